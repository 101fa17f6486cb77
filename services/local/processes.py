"""Stopping the processes local mode, the benchmarks and the tests start."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM (a graceful stop: uvicorn drains, kopf cleans up), then SIGKILL after
    ``timeout`` seconds; returns once the process is reaped. Nothing when it already exited."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
