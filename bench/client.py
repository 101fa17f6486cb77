"""What one service-to-service call costs the caller: ``python -m bench.client``
(``make bench-client``).

Serves the bare app of ``bench/bare.py`` (uvicorn with httptools on uvloop, as the services run)
and calls it from this process through ``services.kit.http.ServiceClient`` on uvloop, with each
transport side by side in one run:

- ``httpcore``: httpx's own transport (httpcore's pool on anyio), as the services called before;
- ``aiohttp``: ``services.kit.http.pooled_transport`` (httpx's API, aiohttp's keep-alive pool),
  as they call now.

For each transport and concurrency (1 and 16 callers at once, as a service under load makes
them) it measures this process's CPU time per call (user + system: the client's own work, the
server runs in another process) and calls per second, and prints

    bench-client <transport> concurrency=<n> cpu_ms_per_call=<c> calls_per_s=<r> ratio=<x>

``ratio`` being the CPU per call over httpcore's at the same concurrency. ``--calls`` (3000).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import uvloop

from services.kit.http import MAX_CONNECTIONS, ServiceClient
from services.local.mongo_server import free_port
from services.local.processes import stop_process

TRANSPORTS = ("httpcore", "aiohttp")


def make_client(transport: str, url: str) -> ServiceClient:
    if transport == "httpcore":
        before = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=20)
        )
        return ServiceClient("bare", url, transport=before, retries=0)
    return ServiceClient("bare", url, retries=0)


async def measure(client: ServiceClient, calls: int, concurrency: int) -> tuple[float, float]:
    async def caller(count: int) -> None:
        for _ in range(count):
            response = await client.request("GET", "/")
            if response.status_code != 200:
                raise RuntimeError(f"bare app answered {response.status_code}")

    await asyncio.gather(*(caller(20) for _ in range(concurrency)))  # connections opened
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(calls // concurrency) for _ in range(concurrency)))
    cpu1, wall1 = time.process_time(), time.perf_counter()
    done = calls // concurrency * concurrency
    return (cpu1 - cpu0) / done * 1000, done / (wall1 - wall0)


async def run(url: str, calls: int) -> list[str]:
    lines = []
    for concurrency in (1, 16):
        baseline = 0.0
        for transport in TRANSPORTS:
            client = make_client(transport, url)
            try:
                cpu_ms, rate = await measure(client, calls, concurrency)
            finally:
                await client.aclose()
            baseline = baseline or cpu_ms
            lines.append(
                f"bench-client {transport} concurrency={concurrency} cpu_ms_per_call={cpu_ms:.3f}"
                f" calls_per_s={rate:.0f} ratio={cpu_ms / baseline:.2f}"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.bare", str(port)], cwd=Path(__file__).resolve().parents[1]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for line in uvloop.run(run(url, args.calls)):
            print(line, flush=True)
    finally:
        stop_process(server, 10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
