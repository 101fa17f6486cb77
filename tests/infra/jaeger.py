"""Jaeger for the tests: the trace store the traced platform sends its spans to, built from its
Go module by ``k8s/offline/go/jaeger/build.sh`` once per machine (about ten minutes on two cores
the first time, then a no-op that prints the cached folder), or ``JAEGER`` when it names a binary.

A machine that cannot build it (no Go, no module proxy) skips the tests that need it, saying why;
under ``CI=true`` it fails them instead, as promtool's and the engines' tests do."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from services.local.jaeger import BUILD_SCRIPT, JaegerError, JaegerServer, jaeger_binary


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"Jaeger is needed under CI=true: {reason}")
    pytest.skip(f"Jaeger: {reason}")


def start_jaeger(folder: Path) -> JaegerServer:
    """Jaeger on free ports, logging into ``folder``; built first when missing."""
    try:
        binary = jaeger_binary()
    except (JaegerError, subprocess.TimeoutExpired) as exc:
        if shutil.which("go") is None:
            _unavailable(f"no Go on PATH to build it with ({BUILD_SCRIPT})")
        _unavailable(str(exc))
        raise
    return JaegerServer(folder / "jaeger.log", binary=binary).start()
