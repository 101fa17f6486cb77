"""The storefront app: pages, assets, CSRF on every form, the same probes, logs and metrics as the
services, and no database of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Controller, Litestar, get
from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import ResponseHeader, State
from litestar.exceptions import NotFoundException
from litestar.handlers.base import BaseRouteHandler
from litestar.plugins.prometheus import PrometheusConfig
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from services.kit.app import MetricsController, app_middleware, client_transport
from services.kit.errors import ServiceUnavailable
from services.kit.health import Health
from services.kit.http import ServiceClient
from services.kit.tracing import setup_tracing
from services.storefront import views
from services.storefront.backend import Backend
from services.storefront.errors import EXCEPTION_HANDLERS
from services.storefront.pages import AccountPages, CartPages, CataloguePages, OrderPages
from services.storefront.settings import StorefrontSettings

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
BACKENDS = ("auth", "product", "cart", "order")

# Everything a page loads comes from the shop itself; no inline script, no other origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "object-src 'none'"
)
SECURITY_HEADERS = [
    ResponseHeader(name="Content-Security-Policy", value=CONTENT_SECURITY_POLICY),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Referrer-Policy", value="same-origin"),
    ResponseHeader(name="X-Frame-Options", value="DENY"),
]


def not_relayed(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Probes and metrics are for the cluster (the kubelet, Prometheus: straight to the pod). A
    request relayed by a proxy - the ingress sets X-Forwarded-For - is the public's, and the
    storefront serves ``/`` to the public, so these paths are no page there."""
    if "x-forwarded-for" in connection.headers or "forwarded" in connection.headers:
        raise NotFoundException()


class Probes(Controller):
    include_in_schema = False
    guards = [not_relayed]

    @get("/healthz", sync_to_thread=False)
    def healthz(self) -> Health:
        return Health(status="ok")

    @get("/readyz", sync_to_thread=False)
    def readyz(self, state: State) -> Health:
        # Ready once started: a service that is down gives friendly pages, not an unready shop.
        if getattr(state, "backend", None) is None:
            raise ServiceUnavailable("Not ready: starting.")
        return Health(status="ready", checks={"started": True})


class Metrics(MetricsController):
    guards = [not_relayed]


def template_engine() -> JinjaTemplateEngine:
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    views.register(environment)
    return JinjaTemplateEngine.from_environment(environment)


def create_app(settings: StorefrontSettings) -> Litestar:
    tracing = setup_tracing(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        clients = {
            name: ServiceClient(
                name,
                getattr(settings, f"{name}_url"),
                timeout=settings.http_timeout_seconds,
                retries=settings.http_retries,
                backoff=settings.http_backoff_seconds,
                transport=client_transport(tracing),
            )
            for name in BACKENDS
        }
        app.state.backend = Backend(clients, password_timeout=settings.password_timeout_seconds)
        log.info("service started", extra={"port": settings.port})
        try:
            yield
        finally:
            app.state.backend = None
            for client in clients.values():
                await client.aclose()
            log.info("service stopped")
            if tracing is not None:
                await asyncio.to_thread(tracing.shutdown)

    prometheus = PrometheusConfig(
        app_name="storefront",
        prefix="checkout",
        group_path=True,
        exclude=["/metrics", "/healthz", "/readyz", "/static", "/pictures"],
    )
    static = create_static_files_router(
        path="/static",
        directories=[HERE / "static"],
        cache_control=None,
        include_in_schema=False,
        send_as_attachment=False,
    )
    return Litestar(
        route_handlers=[
            Probes,
            Metrics,
            CataloguePages,
            CartPages,
            OrderPages,
            AccountPages,
            static,
        ],
        lifespan=[lifespan],
        state=State({"settings": settings, "backend": None, "tracing": tracing}),
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=app_middleware(tracing, inner=[prometheus.middleware]),
        csrf_config=CSRFConfig(
            secret=settings.csrf_secret,
            cookie_secure=settings.cookie_secure,
            cookie_httponly=True,
            cookie_samesite="lax",
            exclude=["^/healthz$", "^/readyz$", "^/metrics$", "^/static/", "^/pictures/"],
        ),
        template_config=TemplateConfig(instance=template_engine()),
        response_headers=SECURITY_HEADERS,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        logging_config=None,
        debug=False,
    )
