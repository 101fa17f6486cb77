"""Where the services' CPU goes during a benchmark: py-spy samples of each service process.

``bench.api --profile DIR`` records, for every endpoint it drives, each service process with
py-spy (sampling from outside the process, ``--nonblocking`` so the service never pauses) and
writes the collapsed stacks to ``DIR/<endpoint>-<service>.txt`` (open them in speedscope or
flamegraph.pl). It then prints, per endpoint, how the samples of the services that worked
split by where the sampled frame was running (its "self" time), grouped by top-level package:

    profile add-to-cart cart busy=0.71 | pymongo 31% | event loop (C) 18% | litestar 12% | ...

py-spy samples a process only while it runs, so ``busy`` is the share of one core it used, and
the groups are shares of that busy time: what a request's CPU is spent in. ``event loop (C)``
is time in uvloop's C code under ``asyncio.Runner.run`` (sockets, timers, httptools' parser).
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# A collapsed stack line: "frame;frame;...;frame <count>", a frame "function (path:line)";
# py-spy shortens paths to the importable part ("pymongo/pool.py", "services/kit/app.py").
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^()]*?)(?::\d+)?\)$")
RATE = 250  # samples per second
# The stack ends in the event loop's run(): the loop itself is working in C (uvloop: sockets,
# timers, httptools' parsing callbacks before they reach Python).
NATIVE_LOOP = "event loop (C)"


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(__file__).resolve().parents[1] / ".venv/bin/py-spy")
    if not Path(found).exists():
        raise SystemExit("bench-api --profile: py-spy is not installed (make venv)")
    return found


def group_of(path: str) -> str:
    """The top-level package of a frame's file ("pymongo", "services.cart", "stdlib")."""
    first = path.split("/", 1)[0].removesuffix(".py")
    if first == "services":
        second = path.split("/")[1:2]
        return "services." + second[0].removesuffix(".py") if second else "services"
    if first in sys.stdlib_module_names or first.startswith("<frozen"):
        return "stdlib"
    return first or "?"


def leaf_group(stack: str) -> str:
    match = _FRAME.match(stack.rsplit(";", 1)[-1])
    if match is None:
        return "?"
    if match["function"] == "Runner.run" and match["path"] == "asyncio/runners.py":
        return NATIVE_LOOP
    return group_of(match["path"])


@dataclass
class Summary:
    service: str
    seconds: float
    samples: int = 0
    groups: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def busy(self) -> float:
        """The share of one core the process was running (py-spy samples only when it is)."""
        return self.samples / (RATE * self.seconds)

    def line(self, endpoint: str, top: int = 8) -> str:
        total = max(1, self.samples)
        head = f"profile {endpoint} {self.service} busy={self.busy:.2f}"
        shares = [f"{group} {100 * n / total:.0f}%" for group, n in self.groups.most_common(top)]
        return " | ".join([head, *shares])


def summarise(service: str, collapsed: Path, seconds: float) -> Summary:
    summary = Summary(service, seconds)
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        summary.samples += int(count)
        summary.groups[leaf_group(stack)] += int(count)
    return summary


class Recording:
    """``with Recording(dir, endpoint, {name: pid}, seconds):`` samples every process while the
    body runs; ``summaries`` afterwards."""

    def __init__(self, directory: Path, endpoint: str, pids: dict[str, int], seconds: float):
        self.directory = directory
        self.endpoint = endpoint
        self.pids = pids
        self.seconds = seconds
        self.outputs = {name: directory / f"{endpoint}-{name}.txt" for name in pids}
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Recording:
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            self.processes.append(
                subprocess.Popen(
                    [
                        py_spy(),
                        "record",
                        "--pid",
                        str(pid),
                        "--format",
                        "raw",
                        "--rate",
                        "250",
                        "--nonblocking",
                        "--duration",
                        str(max(1, round(self.seconds))),
                        "--output",
                        str(self.outputs[name]),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        return self

    def __exit__(self, *_: object) -> None:
        for process in self.processes:
            try:
                process.wait(timeout=self.seconds + 30)
            except subprocess.TimeoutExpired:
                process.terminate()
                process.wait(10)

    def summaries(self) -> list[Summary]:
        seconds = max(1, round(self.seconds))
        found = [
            summarise(name, path, seconds) for name, path in self.outputs.items() if path.is_file()
        ]
        return [s for s in found if s.busy >= 0.05]  # the services that worked
