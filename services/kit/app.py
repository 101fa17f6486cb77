"""The app factory every service uses: one place for lifespan, errors, probes, metrics, OpenAPI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from litestar import Litestar, Response, Router
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from litestar.middleware import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.routes import HTTPRoute
from litestar.types import Message, Middleware, Scope

from services.keys.keyring import KeyRing
from services.kit.backpressure import Capacity, LoadShedding
from services.kit.errors import EXCEPTION_HANDLERS
from services.kit.health import HealthController, KeyIdsController
from services.kit.http import ServiceClient, pooled_transport
from services.kit.mongo import IndexSetup, create_client, ensure_indexes_until_done
from services.kit.observability import RequestContextMiddleware
from services.kit.openapi import SECURITY_COMPONENTS, StrictStructSchemaPlugin, document_operations
from services.kit.request import ServiceRequest
from services.kit.security import AUTH_DEPENDENCIES, RevocationCheck
from services.kit.settings import ServiceSettings
from services.kit.tokens import TokenService
from services.kit.tracing import Tracing, setup_tracing

log = logging.getLogger(__name__)

Hook = Callable[[Litestar], Coroutine[Any, Any, None]]
DEPENDENCY_URLS = ("auth", "product", "cart", "order")


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


def client_transport(tracing: Tracing | None) -> httpx.AsyncBaseTransport:
    """The transport of a service client: aiohttp's pool, traced when tracing is on."""
    transport = pooled_transport()
    return tracing.client_transport(transport) if tracing is not None else transport


def _clients(
    settings: ServiceSettings, internal_keys: KeyRing, tracing: Tracing | None
) -> dict[str, ServiceClient]:
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
                transport=client_transport(tracing),
            )
    return clients


def app_middleware(
    tracing: Tracing | None, inner: Sequence[Middleware], outer: Sequence[Middleware] = ()
) -> list[Middleware]:
    """The middleware of every app, outermost first: ``outer`` (e.g. load shedding), the
    request id and access log, ``inner`` (e.g. metrics); with tracing on, its server span round
    all of it and its annotations just inside the request id."""
    request_context = DefineMiddleware(RequestContextMiddleware)
    if tracing is None:
        return [*outer, request_context, *inner]
    return [*tracing.middleware(), *outer, request_context, tracing.annotations(), *inner]


def from_state(name: str) -> Provide:
    """A dependency that gives ``app.state.<name>``, an object the service's build hook made
    (e.g. ``{"cart_service": from_state("cart_service")}``)."""

    def provide(state: State) -> Any:
        return state[name]

    return Provide(provide, sync_to_thread=False)


def every(
    seconds: Callable[[Litestar], float],
    work: Callable[[Litestar], Awaitable[object]],
    *,
    wake: Callable[[Litestar], asyncio.Event] | None = None,
) -> Hook:
    """A ``background`` hook: once the indexes exist, ``work(app)`` every ``seconds(app)``, and
    at once whenever the ``wake(app)`` event is set; a pass that fails is logged with its trace
    and the next one runs on time."""

    async def worker(app: Litestar) -> None:
        await app.state.indexes_ready.wait()
        interval = seconds(app)
        event = wake(app) if wake is not None else asyncio.Event()
        while True:
            try:
                await work(app)
            except Exception:
                log.exception("background pass failed", extra={"worker": worker.__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), interval)
            event.clear()

    worker.__name__ = getattr(work, "__name__", "worker")
    return worker


@dataclass(frozen=True, kw_only=True)
class ServiceDefinition:
    """One service, as its ``app.py`` declares it; `create_service_app` builds its Litestar app
    (its OpenAPI title is "Checkout Platform — <service name>")."""

    description: str
    """What the service does, for its OpenAPI document."""
    router: Router
    indexes: IndexSetup
    build: Hook
    """Runs once the database client exists: builds the service's objects on ``app.state``."""
    on_ready: Sequence[Hook] = ()
    """Run once the indexes exist (e.g. seeding); readiness waits for them."""
    background: Sequence[Hook] = ()
    """Long-running workers (e.g. an outbox relay), started with the app, cancelled at shutdown."""
    is_revoked: RevocationCheck | None = None
    """Refuses the tokens of users deleted since they were issued (see `kit.security`)."""


def create_service_app(
    settings: ServiceSettings,
    service: ServiceDefinition,
    *,
    openapi_limits: Mapping[str, int] | None = None,
) -> Litestar:
    """Build ``service``'s app: one place for lifespan, errors, probes, metrics and OpenAPI.
    ``openapi_limits``: query parameters whose maximum is a setting
    (``{"pageSize": settings.max_page_size}``)."""
    jwt_keys = KeyRing(
        settings.jwt_keyring_file, check_interval=settings.keyring_check_interval_seconds
    )
    internal_keys = KeyRing(
        settings.internal_keyring_file, check_interval=settings.keyring_check_interval_seconds
    )
    tracing = setup_tracing(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        jwt_keys.refresh(force=True)
        internal_keys.refresh(force=True)
        listeners = [tracing.mongo_listener()] if tracing is not None else []
        mongo = create_client(settings, listeners=listeners)
        app.state.mongo = mongo
        app.state.db = mongo[settings.mongo_db]
        app.state.clients = _clients(settings, internal_keys, tracing)
        await service.build(app)
        ready = app.state.indexes_ready
        tasks: list[asyncio.Task[None]] = []

        async def after_indexes() -> None:
            await ensure_indexes_until_done(app.state.db, service.indexes)
            for hook in service.on_ready:
                try:
                    await hook(app)
                except Exception:
                    log.exception("start-up hook failed", extra={"hook": hook.__name__})
            # Readiness waits for the hooks too, so e.g. a bootstrap admin exists once ready.
            ready.set()

        tasks.append(asyncio.create_task(after_indexes(), name="indexes"))
        for hook in service.background:
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
            if tracing is not None:
                await asyncio.to_thread(tracing.shutdown)

    app_state = State(
        {
            "settings": settings,
            "jwt_keys": jwt_keys,
            "internal_keys": internal_keys,
            "tokens": TokenService(
                jwt_keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience
            ),
            "indexes_ready": asyncio.Event(),
            "is_revoked": service.is_revoked,
            "tracing": tracing,
        }
    )
    prometheus = PrometheusConfig(
        app_name=settings.service_name.replace("-", "_"),
        prefix="checkout",
        group_path=True,
        exclude=["/metrics", "/healthz", "/readyz"],
    )
    allowed_methods: dict[str, str] = {}
    app = Litestar(
        route_handlers=[HealthController, KeyIdsController, MetricsController, service.router],
        lifespan=[lifespan],
        state=app_state,
        dependencies=AUTH_DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=app_middleware(
            tracing,
            outer=[
                DefineMiddleware(LoadShedding, capacity=Capacity(settings.max_in_flight_requests))
            ],
            inner=[prometheus.middleware],
        ),
        request_class=ServiceRequest,
        plugins=[StrictStructSchemaPlugin()],
        before_send=[_allow_header(allowed_methods)],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title=f"Checkout Platform — {settings.service_name}",
            version="1.0.0",
            description=service.description,
            components=SECURITY_COMPONENTS,
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
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            allowed_methods[route.path_format] = ", ".join(sorted(route.methods))
    document_operations(app, openapi_limits)
    return app


def _allow_header(allowed_methods: dict[str, str]) -> Callable[[Message, Scope], Awaitable[None]]:
    """Litestar answers OPTIONS with the methods of the first handlers registered on a path (a
    path whose handlers come in two registrations lists only some); the route table knows all."""

    async def before_send(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
            return
        allowed = allowed_methods.get(scope.get("path_template", ""))
        if allowed is None:
            return
        headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
        headers.append((b"allow", allowed.encode("latin-1")))
        message["headers"] = headers

    return before_send


async def _missing_schema_page_as_problem(response: Response[Any]) -> Response[Any]:
    # Litestar answers an unknown /schema/... path with an HTML page; ours are problem+json.
    if response.status_code == 404:
        raise NotFoundException("No such schema document.")
    return response


def _no_default_logging(config: AppConfig) -> AppConfig:
    # Logging is configured once by services.kit.serve; Litestar must not install its own.
    config.logging_config = None
    return config
