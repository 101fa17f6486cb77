"""A smoke of `make bench-operator` (bench/operator.py): a handful of Checkouts and short windows.
It runs, prints its four lines, and an unchanged Checkout costs no render and no write while the
drift check (every second here) runs several times over the steady window. No speed is asserted:
that is what the benchmark reports."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.operator.cluster import REPO_ROOT

N = 3
LINES = {
    "apply": rf"bench-operator apply n={N} seconds=[\d.]+ helm_renders=(\d+) api_writes=(\d+)",
    "steady": (
        rf"bench-operator steady n={N} cpu_core_fraction=[\d.]+ helm_renders=(\d+) "
        r"api_writes=(\d+) window_s=6"
    ),
    "waiting": rf"bench-operator waiting n={N} cpu_core_fraction=[\d.]+",
    "memory": rf"bench-operator memory n={N} rss_mb=\d+",
}


def test_the_operator_bench_runs_and_an_unchanged_checkout_renders_nothing(
    tmp_path: Path,
) -> None:
    argv = [
        *(sys.executable, "-m", "bench.operator", "--n", str(N)),
        *("--window", "6", "--waiting-window", "2", "--settle", "2", "--drift-interval", "1"),
        *("--workdir", str(tmp_path)),
    ]
    result = subprocess.run(
        argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(LINES), result.stdout
    found = {}
    for (name, pattern), line in zip(LINES.items(), lines, strict=True):
        match = re.fullmatch(pattern, line)
        assert match, f"{name}: {line!r} does not match {pattern!r}"
        found[name] = match.groups()
    renders, writes = map(int, found["apply"])
    assert renders == N  # one helm process renders the five charts of a Checkout
    assert writes > 0
    assert found["steady"] == ("0", "0"), result.stderr
