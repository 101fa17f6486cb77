"""Distributed traces with OpenTelemetry, off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

Off, nothing is set up: no SDK (not even imported), no middleware, no wrapped transport, no
database listener, no exporter thread (``tests/tracing`` holds that). Litestar itself imports
OpenTelemetry's API and ASGI middleware module once at app start whenever they are installed.

On, every process that serves HTTP (the four services, the storefront) sends its spans over
OTLP/HTTP to that endpoint, batched by a background thread:

- a server span per request, from Litestar's OpenTelemetry middleware (W3C ``traceparent`` read
  from the caller), named by method and route template, carrying ``checkout.request_id`` (the
  ``X-Request-ID`` of the logs) and, on an error answer, the problem's ``type`` and ``title``;
  5xx answers mark it ERROR;
- a client span per attempt of every call to another service (httpx's instrumentation wrapped
  round the kit's aiohttp-pooled transport, so ``traceparent`` goes out on the call), ERROR on a
  5xx answer or a transport failure (a refused connection, a timeout);
- a client span per MongoDB command of a request, from PyMongo's command monitoring through
  ``opentelemetry-instrumentation-pymongo``'s listener (it works for the async client: the events
  are the same, and the async client publishes them in the task that awaits the command, so the
  request's span is the parent). Commands outside any request (background relays, index set-up)
  are not traced: they would be a root trace per poll.

Log lines written inside a span carry its ``trace_id`` and ``span_id``.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from litestar.enums import ScopeType
from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from services.kit.observability import current_request_id, loggable_path

if TYPE_CHECKING:
    import httpx
    from opentelemetry.sdk.trace import TracerProvider
    from pymongo.monitoring import CommandListener

    from services.kit.settings import AppSettings

log = logging.getLogger(__name__)

REQUEST_ID_ATTRIBUTE = "checkout.request_id"
PROBLEM_TYPE_ATTRIBUTE = "checkout.problem.type"
PROBLEM_TITLE_ATTRIBUTE = "checkout.problem.title"
# Probes and scrapes are not requests anyone follows; a trace per kubelet probe is noise.
UNTRACED_PATHS = ["^/healthz$", "^/readyz$", "^/metrics$", "^/static/", "^/pictures/"]
# Enough of a problem+json body for its type and title (ours are a few hundred bytes).
_PROBLEM_BODY_LIMIT = 8192


def enabled(settings: AppSettings) -> bool:
    return bool(settings.otel_exporter_otlp_endpoint)


def resource_attributes(settings: AppSettings) -> dict[str, str]:
    """What identifies this process in a trace: the service, and the Checkout and namespace it
    belongs to when the operator says so (``OTEL_RESOURCE_ATTRIBUTES`` adds to these)."""
    attributes = {"service.name": settings.service_name, "service.namespace": "checkout-platform"}
    if settings.checkout_name:
        attributes["checkout.name"] = settings.checkout_name
    if settings.pod_namespace:
        attributes["k8s.namespace.name"] = settings.pod_namespace
    return attributes


class Tracing:
    """Tracing of one app: its tracer provider, and what to wire into the app and its clients."""

    def __init__(self, settings: AppSettings) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

        assert settings.otel_exporter_otlp_endpoint
        # As the OTel spec says of the generic variable: the signal's path is appended to it.
        self.endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        self.provider: TracerProvider = TracerProvider(
            resource=Resource.create(resource_attributes(settings)),
            sampler=ParentBasedTraceIdRatio(settings.tracing_sample_ratio),
        )
        self.provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=self.endpoint, timeout=5))
        )
        self._log_filter = TraceIdsFilter()
        for handler in logging.getLogger().handlers:
            handler.addFilter(self._log_filter)

    def middleware(self) -> list[DefineMiddleware]:
        """The outermost middleware of the app (the server span), and the one that annotates it
        (to go inside the request-id middleware)."""
        from litestar.plugins.opentelemetry import OpenTelemetryConfig

        config = OpenTelemetryConfig(
            tracer_provider=self.provider,
            exclude=UNTRACED_PATHS,
            # The per-message send/receive spans double the span count for nothing we read.
            exclude_spans=["receive", "send"],
            scopes={ScopeType.HTTP},
            scope_span_details_extractor=_span_details,
        )
        return [config.middleware]

    def annotations(self) -> DefineMiddleware:
        return DefineMiddleware(ServerSpanAnnotations)

    def client_transport(self, inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        from opentelemetry.instrumentation.httpx import AsyncOpenTelemetryTransport

        return AsyncOpenTelemetryTransport(inner, tracer_provider=self.provider)

    def mongo_listener(self) -> CommandListener:
        return _request_command_tracer(self.provider)

    def shutdown(self) -> None:
        """Flush what is batched (a stopping service's last requests) and stop the thread."""
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self._log_filter)
        self.provider.shutdown()


def setup_tracing(settings: AppSettings) -> Tracing | None:
    """The app's tracing, or None (and nothing imported) when it is off."""
    if not enabled(settings):
        return None
    tracing = Tracing(settings)
    log.info(
        "tracing on",
        extra={"endpoint": tracing.endpoint, "sampleRatio": settings.tracing_sample_ratio},
    )
    return tracing


def _span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    # The first name, by method only: the path may hold ids and tokens (seed 000 puts the JWT in
    # one). ServerSpanAnnotations renames the span by its route template once routed.
    return str(scope.get("method", "HTTP")), {}


class ServerSpanAnnotations:
    """Inside the request-id middleware: puts the request id on the server span, and the problem
    type and title of an error answer (RFC 9457 problem+json, the kit's one error format)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from opentelemetry import trace

        span = trace.get_current_span()
        if scope["type"] != "http" or not span.is_recording():  # type: ignore[comparison-overlap]
            await self.app(scope, receive, send)
            return
        request_id = current_request_id()
        if request_id:
            span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id)
        path = scope.get("path", "")
        shown = loggable_path(path)
        if shown != path:
            # A token in the path (seed 000's edit-quantity route) stays out of traces as it
            # stays out of the logs.
            query = scope.get("query_string", b"").decode("latin-1")
            span.set_attribute("http.target", shown + (f"?{query}" if query else ""))
            span.set_attribute("url.path", shown)
            recorded = getattr(span, "attributes", None) or {}
            if "http.url" in recorded:
                span.set_attribute("http.url", loggable_path(str(recorded["http.url"])))
        route = scope.get("path_template")
        if route:
            # The server span starts before routing (Litestar runs its OpenTelemetry middleware
            # round the whole app); here the route is known: one span name per route, whatever
            # the ids in the path.
            span.update_name(f"{scope.get('method', '')} {route}".strip())
            span.set_attribute("http.route", route)
        problem = bytearray()
        collecting = False

        async def annotated_send(message: Message) -> None:
            nonlocal collecting
            if message["type"] == "http.response.start":
                content_type = b""
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type = value
                collecting = content_type.startswith(b"application/problem+json")
            elif message["type"] == "http.response.body" and collecting:
                problem.extend(message.get("body", b"")[: _PROBLEM_BODY_LIMIT - len(problem)])
                if not message.get("more_body", False):
                    collecting = False
                    _annotate_problem(span, bytes(problem))
            await send(message)

        await self.app(scope, receive, annotated_send)


def _annotate_problem(span: Any, body: bytes) -> None:
    import msgspec

    with contextlib.suppress(msgspec.DecodeError, ValueError):
        problem = msgspec.json.decode(body)
        if isinstance(problem, dict):
            if isinstance(problem.get("type"), str):
                span.set_attribute(PROBLEM_TYPE_ATTRIBUTE, problem["type"])
            if isinstance(problem.get("title"), str):
                span.set_attribute(PROBLEM_TITLE_ATTRIBUTE, problem["title"])


def _request_command_tracer(provider: TracerProvider) -> CommandListener:
    from opentelemetry import trace
    from opentelemetry.instrumentation.pymongo import CommandTracer
    from opentelemetry.instrumentation.pymongo.version import __version__
    from pymongo import monitoring

    class RequestCommandTracer(CommandTracer):
        """The instrumentation's listener, for commands run inside a traced request only."""

        def started(self, event: monitoring.CommandStartedEvent) -> None:
            if trace.get_current_span().is_recording():
                super().started(event)

    tracer = provider.get_tracer("opentelemetry.instrumentation.pymongo", __version__)
    return RequestCommandTracer(tracer)


class TraceIdsFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` to a log record written inside a span (the JSON
    formatter writes every extra attribute of a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from opentelemetry import trace

        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True
