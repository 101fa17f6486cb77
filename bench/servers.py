"""Which ASGI server the services run on: ``python -m bench.servers`` (``make bench-servers``).

Serves the same two apps under each candidate, one at a time, on one MongoDB-protocol server:
the bare Litestar app of ``bench/bare.py`` and the real product service (its sample catalogue
loaded), and drives each with wrk (32 connections, ``--seconds`` each; see ``bench/api.py`` for why
wrk). Candidates:

- ``uvicorn-h11``: uvicorn with its pure-Python HTTP parser (h11) on the standard asyncio loop —
  how the services ran before;
- ``uvicorn-httptools``: uvicorn with httptools (llhttp, C) on uvloop (libuv) — how they run now;
- ``granian``: Granian (Rust, hyper) with one worker and its ASGI interface.

Per candidate and endpoint it prints one line,

    bench-servers <server> <endpoint> rps=<r> p50_ms=<m> p99_ms=<m> failed=<n> cpu_ms=<c>
      ratio=<x>   (one line; ratio: requests/s over uvicorn-h11's on the same endpoint)

where ``cpu_ms`` is the server process's CPU time per request, and exits 1 when a request failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.api import Endpoint, cpu_ticks, wrk_summary
from services.local.mongo_server import free_port
from services.local.platform import LocalPlatform
from services.local.processes import stop_process

TICKS = os.sysconf("SC_CLK_TCK")
CANDIDATES = ("uvicorn-h11", "uvicorn-httptools", "granian")


def product_app() -> Any:
    """The product service as ``python -m services.product`` builds it (a factory for servers
    started from the command line)."""
    from services.kit.observability import configure_logging
    from services.kit.settings import load_settings
    from services.product.app import create_app
    from services.product.settings import ProductSettings

    settings = load_settings(ProductSettings, os.environ)
    configure_logging("product", "WARNING")
    return create_app(settings)


def command(server: str, target: str, factory: bool, port: int) -> list[str]:
    python = sys.executable
    if server == "granian":
        return [
            python, "-m", "granian", "--interface", "asgi", "--workers", "1", "--host",
            "127.0.0.1", "--port", str(port), "--no-ws", "--log-level", "warning",
            *(["--factory"] if factory else []), target,
        ]  # fmt: skip
    loop, http = ("asyncio", "h11") if server == "uvicorn-h11" else ("uvloop", "httptools")
    return [
        python, "-m", "uvicorn", "--loop", loop, "--http", http, "--host", "127.0.0.1",
        "--port", str(port), "--no-access-log", "--log-level", "warning",
        "--no-server-header", *(["--factory"] if factory else []), target,
    ]  # fmt: skip


def with_children(pid: int) -> list[int]:
    """``pid`` and its descendants (Granian serves from a worker process it spawns)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[1])
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench-servers: {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench-servers: {url} did not answer in {timeout:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.servers", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    scripts = Path(tempfile.mkdtemp(prefix="bench-servers-"))
    failed = 0
    with LocalPlatform(
        Path(scripts / "platform"), services=("product",), ephemeral_mongo=True
    ) as platform:
        any_product = httpx.get(platform.urls["product"] + "/api/v1/products?pageSize=1").json()
        product_path = f"/api/v1/products/{any_product['items'][0]['id']}"
        env = {
            k: v for k, v in platform.env_for("product").items() if k not in ("PORT", "LISTEN_FD")
        }
        platform.stop_service("product")  # the candidates serve it now, one at a time
        endpoints = [
            ("bare", "bench.bare:app", False, Endpoint("bare", "bare", "GET", "/")),
            ("product-read", "bench.servers:product_app", True,
             Endpoint("product-read", "product", "GET", product_path)),
            ("healthz", "bench.servers:product_app", True,
             Endpoint("healthz", "product", "GET", "/healthz")),
        ]  # fmt: skip
        baseline: dict[str, float] = {}
        lines = []
        for name, target, factory, endpoint in endpoints:
            for server in CANDIDATES:
                port = free_port()
                process = subprocess.Popen(
                    command(server, target, factory, port),
                    env={**env, "PORT": str(port)},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                try:
                    url = f"http://127.0.0.1:{port}"
                    wait_ready(url + ("/" if name == "bare" else "/readyz"), process)
                    script = scripts / f"{name}-{server}.lua"
                    script.write_text(endpoint.script())
                    pids = with_children(process.pid)
                    cpu0 = cpu_ticks(pids)
                    summary = wrk_summary(
                        url + endpoint.path, script, args.seconds, args.connections
                    )
                    cpu1 = cpu_ticks(pids)
                finally:
                    stop_process(process, 15)
                n = max(1, summary["requests"])
                rps = summary["requests"] / (summary["duration_us"] / 1e6)
                errors = summary["status"] + summary["socket"]
                failed += errors
                baseline.setdefault(name, rps)
                line = (
                    f"bench-servers {server} {name} rps={rps:.0f}"
                    f" p50_ms={summary['p50_us'] / 1000:.1f} p99_ms={summary['p99_us'] / 1000:.1f}"
                    f" failed={errors} cpu_ms={(cpu1 - cpu0) / TICKS * 1000 / n:.3f}"
                    f" ratio={rps / baseline[name]:.2f}"
                )
                print(line, flush=True)
                lines.append(line)
    print()
    for line in lines:
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
