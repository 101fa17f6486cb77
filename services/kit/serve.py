"""Process entry point shared by the services: settings, logging, uvicorn, clean shutdown."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from litestar import Litestar

from services.kit.observability import configure_logging
from services.kit.settings import ServiceSettings, SettingsError, load_settings

S = TypeVar("S", bound=ServiceSettings)


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
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
