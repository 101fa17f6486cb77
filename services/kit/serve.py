"""Process entry point shared by the services: settings, logging, uvicorn, clean shutdown."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import uvicorn
from litestar import Litestar

from services.kit.observability import configure_logging
from services.kit.settings import AppSettings, SettingsError, load_settings

S = TypeVar("S", bound=AppSettings)


def proxy_options(settings: AppSettings) -> dict[str, Any]:
    """uvicorn's options for the proxy headers: X-Forwarded-For and -Proto are read only from
    the configured trusted proxies (uvicorn's own default would trust 127.0.0.1, or whatever
    FORWARDED_ALLOW_IPS says). In a chain, the client is the right-most address that is not a
    trusted proxy, so a value the client sent itself is never taken for its address."""
    # uvicorn reads "10.244.0.1/16" (host bits set) as a name, never matched: pass the network.
    trusted = [
        str(ipaddress.ip_network(entry, strict=False)) if "/" in entry else entry
        for entry in settings.trusted_proxies
    ]
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}


def server_options(host: str, port: int) -> dict[str, Any]:
    """How every service is served (bench/api.py serves its bare baseline app the same way):
    uvicorn with httptools (llhttp) on uvloop, twice the requests/s of its pure-Python h11 on the
    asyncio loop for the same app (``make bench-servers`` measures the candidates side by side)."""
    return {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }


def run(settings_cls: type[S], app_factory: Callable[[S], Litestar], service: str) -> None:
    try:
        # The service's own name is the default for its name and its database name.
        environ = {"SERVICE_NAME": service, "MONGO_DB": service, **os.environ}
        settings = load_settings(settings_cls, environ)
    except SettingsError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    configure_logging(service, settings.log_level)
    app = app_factory(settings)
    config = uvicorn.Config(
        app, **server_options(settings.host, settings.port), **proxy_options(settings)
    )
    server = uvicorn.Server(config)
    listen_fd = os.environ.get("LISTEN_FD")
    if listen_fd:
        # A socket bound by whoever started this process (local mode binds every service's port
        # before it starts them, so no two processes can be handed the same free port).
        server.run(sockets=[socket.socket(fileno=int(listen_fd))])
    else:
        server.run()
