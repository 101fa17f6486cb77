"""promtool for the tests: Prometheus' rule checker and unit-test runner, built from its Go module
by ``k8s/offline/go/promtool/build.sh`` once per machine (minutes on two cores the first time,
then a no-op that prints the cached folder), or ``PROMTOOL`` when it names a binary.

A machine that cannot build it (no Go, no module proxy) skips the tests that need it, saying why;
under ``CI=true`` it fails them instead, as the engines' tests do (tests/infra/engines.py)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from services.local.builds import BuildFailed, built_folder

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "k8s" / "offline" / "go" / "promtool" / "build.sh"
# A cold build took about five minutes on two cores (longer while other builds share them).
BUILD_TIMEOUT_SECONDS = 60 * 60

_lock = threading.Lock()
_built: Path | None = None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"promtool is needed under CI=true: {reason}")
    pytest.skip(f"promtool: {reason}")


def promtool_path() -> Path:
    """The promtool binary, built when missing (at most once per process)."""
    global _built
    given = os.environ.get("PROMTOOL")
    if given:
        return Path(given)
    with _lock:
        if _built is None:
            # With a warm cache build.sh only prints the folder, Go or not.
            try:
                folder = built_folder(BUILD_SCRIPT, timeout=BUILD_TIMEOUT_SECONDS)
            except BuildFailed as exc:
                if shutil.which("go") is None:
                    _unavailable(f"no Go on PATH to build it with ({BUILD_SCRIPT})")
                _unavailable(
                    f"{exc}; its output is on stderr above. Set PROMTOOL to use a prebuilt "
                    "binary instead."
                )
            _built = folder / "promtool"
        return _built
