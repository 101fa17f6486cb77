"""A smoke run of the API benchmark (``make bench-api``; figures come from the full run, never
from tests): it starts local mode, measures, prints one line per endpoint in its fixed format,
and exits 1 when a request failed (here an extra endpoint that answers 404); with ``--profile``
also where the services' CPU went."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^bench-api (?P<name>\S+) rps=\d+ p50_ms=[\d.]+ p99_ms=[\d.]+ failed=(?P<failed>\d+)"
    r" cpu_ms=[\d.]+ db_cpu_ms=[\d.]+ db_cmds=[\d.]+ calls=[\d.]+ ratio=[\d.]+"
    r"(?P<counted> shed=(?P<shed>\d+) ok=(?P<ok>\d+) max_ms=[\d.]+)?$",
    re.MULTILINE,
)


PROFILE = re.compile(r"^profile (?P<name>\S+) (?P<service>\S+) busy=[\d.]+( \| .+ \d+%)+$", re.M)


def test_the_benchmark_runs_and_fails_on_a_failed_request(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is not installed (.ci/run installs Debian's wrk)")
        pytest.skip("wrk is not installed (apt-get install wrk, or make bench-api)")
    missing = "missing=product:/api/v1/products/000000000000000000000000"
    run = subprocess.run(
        [sys.executable, "-m", "bench.api", "--seconds", "1", "--connections", "4",
         "--only", "product-read,overload", "--extra", missing, "--profile", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    found = {m["name"]: m for m in LINE.finditer(run.stdout)}
    lines = {name: int(m["failed"]) for name, m in found.items()}
    assert lines.keys() == {"bare", "product-read", "overload", "missing"}, run.stdout + run.stderr
    assert lines["bare"] == 0 and lines["product-read"] == 0, run.stdout
    assert lines["missing"] > 0, run.stdout
    # The overload's line counts its answers: 2xx and 503 + Retry-After, at 256 connections
    # (how many of each, and how fast, is the full run's business).
    overload = found["overload"]
    assert overload["counted"] and int(overload["ok"]) + int(overload["shed"]) > 0, run.stdout
    assert all(not m["counted"] for name, m in found.items() if name != "overload"), run.stdout
    assert run.returncode == 1, run.stdout + run.stderr
    assert "failed requests" in run.stderr
    # --profile: py-spy sampled the product service while it answered, and where its CPU went
    # was printed and its stacks kept.
    profiled = {(m["name"], m["service"]) for m in PROFILE.finditer(run.stdout)}
    assert ("product-read", "product") in profiled, run.stdout
    assert (tmp_path / "product-read-product.txt").stat().st_size > 0
