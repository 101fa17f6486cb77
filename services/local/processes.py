"""Stopping the processes local mode, the benchmarks and the tests start, and finding them."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path


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


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def process_tree(pids: Iterable[int]) -> list[int]:
    """``pids`` and all their live descendants (Linux, from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _ppid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
