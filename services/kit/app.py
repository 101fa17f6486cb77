"""The app factory every service uses: one place for lifespan, errors, probes, metrics, OpenAPI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

from litestar import Litestar, Response, Router
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from litestar.middleware import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.types import ControllerRouterHandler

from services.kit.errors import EXCEPTION_HANDLERS
from services.kit.health import HealthController, KeyIdsController
from services.kit.http import ServiceClient
from services.kit.keyring import KeyRing
from services.kit.mongo import IndexSetup, create_client, ensure_indexes_until_done
from services.kit.observability import RequestContextMiddleware
from services.kit.request import ServiceRequest
from services.kit.security import AUTH_DEPENDENCIES
from services.kit.settings import ServiceSettings
from services.kit.tokens import TokenService

log = logging.getLogger(__name__)

Hook = Callable[[Litestar], Coroutine[Any, Any, None]]
DEPENDENCY_URLS = ("auth", "product", "cart", "order")


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


def _clients(settings: ServiceSettings, internal_keys: KeyRing) -> dict[str, ServiceClient]:
    clients = {}
    for name in DEPENDENCY_URLS:
        url = getattr(settings, f"{name}_url")
        if url and name != settings.service_name:
            clients[name] = ServiceClient(
                name,
                url,
                internal_keys=internal_keys,
                timeout=settings.http_timeout_seconds,
                retries=settings.http_retries,
                backoff=settings.http_backoff_seconds,
            )
    return clients


def create_service_app(
    settings: ServiceSettings,
    *,
    route_handlers: Sequence[ControllerRouterHandler],
    title: str,
    description: str,
    index_setup: IndexSetup,
    dependencies: dict[str, Provide] | None = None,
    on_startup: Sequence[Hook] = (),
    on_ready: Sequence[Hook] = (),
    background: Sequence[Hook] = (),
    state: dict[str, Any] | None = None,
) -> Litestar:
    """Build a service app.

    ``on_startup`` hooks run once the database client exists (build services on ``app.state``);
    ``on_ready`` hooks run once indexes exist (e.g. seeding); ``background`` hooks are long-running
    workers (e.g. an outbox relay) started with the app and cancelled at shutdown.
    """
    jwt_keys = KeyRing(
        settings.jwt_keyring_file, check_interval=settings.keyring_check_interval_seconds
    )
    internal_keys = KeyRing(
        settings.internal_keyring_file, check_interval=settings.keyring_check_interval_seconds
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        jwt_keys.refresh(force=True)
        internal_keys.refresh(force=True)
        mongo = create_client(settings)
        app.state.mongo = mongo
        app.state.db = mongo[settings.mongo_db]
        app.state.clients = _clients(settings, internal_keys)
        for hook in on_startup:
            await hook(app)
        ready = app.state.indexes_ready
        tasks: list[asyncio.Task[None]] = []

        async def after_indexes() -> None:
            await ensure_indexes_until_done(app.state.db, index_setup)
            for hook in on_ready:
                try:
                    await hook(app)
                except Exception:
                    log.exception("start-up hook failed", extra={"hook": hook.__name__})
            # Readiness waits for the hooks too, so e.g. a bootstrap admin exists once ready.
            ready.set()

        tasks.append(asyncio.create_task(after_indexes(), name="indexes"))
        for hook in background:
            tasks.append(asyncio.create_task(hook(app), name=getattr(hook, "__name__", "worker")))
        log.info("service started", extra={"port": settings.port})
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for client in app.state.clients.values():
                await client.aclose()
            await mongo.close()
            log.info("service stopped")

    app_state = State(
        {
            "settings": settings,
            "jwt_keys": jwt_keys,
            "internal_keys": internal_keys,
            "tokens": TokenService(
                jwt_keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience
            ),
            "indexes_ready": asyncio.Event(),
            **(state or {}),
        }
    )
    prometheus = PrometheusConfig(
        app_name=settings.service_name.replace("-", "_"),
        prefix="checkout",
        group_path=True,
        exclude=["/metrics", "/healthz", "/readyz"],
    )
    return Litestar(
        route_handlers=[HealthController, KeyIdsController, MetricsController, *route_handlers],
        lifespan=[lifespan],
        state=app_state,
        dependencies={**AUTH_DEPENDENCIES, **(dependencies or {})},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[DefineMiddleware(RequestContextMiddleware), prometheus.middleware],
        request_class=ServiceRequest,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title=title,
            version="1.0.0",
            description=description,
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
            openapi_router=Router(
                "/schema",
                route_handlers=[],
                include_in_schema=False,
                after_request=_missing_schema_page_as_problem,
            ),
        ),
        logging_config=None,
        debug=False,
        on_app_init=[_no_default_logging],
    )


async def _missing_schema_page_as_problem(response: Response[Any]) -> Response[Any]:
    # Litestar answers an unknown /schema/... path with an HTML page; ours are problem+json.
    if response.status_code == 404:
        raise NotFoundException("No such schema document.")
    return response


def _no_default_logging(config: AppConfig) -> AppConfig:
    # Logging is configured once by services.kit.serve; Litestar must not install its own.
    config.logging_config = None
    return config
