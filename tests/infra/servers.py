"""Running a service app on a real localhost socket inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn
from litestar import Litestar

from services.kit.serve import proxy_options
from services.kit.settings import ServiceSettings


class _QuietServer(uvicorn.Server):
    # Ctrl-C must stop pytest, not be swallowed by a test server.
    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


@contextlib.asynccontextmanager
async def serve_app(app: Litestar, settings: ServiceSettings | None = None) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 and a free port; yields its base URL. The proxy
    headers are read as the service's own process reads them (``settings``; none: no proxy)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    proxies = proxy_options(settings) if settings else {"forwarded_allow_ips": []}
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", **proxies)
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        if not server.started:
            raise RuntimeError("test server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        sock.close()


def free_port_url() -> str:
    """A localhost URL nothing listens on."""
    from services.local.mongo_server import free_port

    return f"http://127.0.0.1:{free_port()}"
