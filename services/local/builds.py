"""The one-off builds of ``k8s/offline`` (a Go tool, the Kubernetes binaries) run from Python: each
build script builds once per machine into the cache and prints the folder it left the result in,
last; with a warm cache it only prints that folder."""

from __future__ import annotations

import subprocess
from pathlib import Path


class BuildFailed(RuntimeError):
    def __init__(self, script: Path, returncode: int) -> None:
        super().__init__(f"{script} failed with exit code {returncode}")
        self.script = script
        self.returncode = returncode


def built_folder(script: Path, *, timeout: float | None = None) -> Path:
    """Run ``bash script`` and return the folder it printed last. Its stderr is inherited, so a
    first, long build shows its progress; a failure (or nothing printed) is `BuildFailed`."""
    result = subprocess.run(
        ["bash", str(script)], stdout=subprocess.PIPE, text=True, timeout=timeout, check=False
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise BuildFailed(script, result.returncode)
    return Path(lines[-1])
