"""The platform as local processes with tracing on, sending to a real Jaeger (built from its Go
module), and helpers that read its traces back through Jaeger's query API."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from services.local.jaeger import JaegerServer
from services.local.mongo_server import MongoServer
from services.local.platform import PROCESSES, LocalPlatform
from tests.infra.jaeger import start_jaeger
from tests.platform.conftest import PASSWORD, Shopper, eventually

__all__ = ["PASSWORD", "Shopper", "eventually"]


@pytest.fixture(scope="session")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JaegerServer]:
    server = start_jaeger(tmp_path_factory.mktemp("jaeger"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def traced(
    mongo_server: MongoServer, jaeger: JaegerServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPlatform]:
    fast = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "8192"}
    retries = {"HTTP_RETRIES": "1", "HTTP_BACKOFF_SECONDS": "0.02", "HTTP_TIMEOUT_SECONDS": "2"}
    with LocalPlatform(
        tmp_path_factory.mktemp("traced"),
        mongo=mongo_server,
        db_prefix="t" + uuid.uuid4().hex[:8] + "_",
        services=PROCESSES,
        otlp_endpoint=jaeger.otlp_endpoint,
        service_env={"auth": fast | retries, **{n: retries for n in ("product", "cart", "order")}},
    ) as running:
        yield running


@pytest.fixture
def shopper(traced: LocalPlatform) -> Iterator[Shopper]:
    made = Shopper(traced, f"t-{uuid.uuid4().hex[:10]}@example.com").register().sign_in()
    yield made
    made.http.close()


@dataclass
class Span:
    """One span of a trace as Jaeger's query API gives it, with its process's service name."""

    raw: dict[str, Any]
    service: str

    @property
    def id(self) -> str:
        return str(self.raw["spanID"])

    @property
    def name(self) -> str:
        return str(self.raw["operationName"])

    @property
    def parent_id(self) -> str | None:
        for reference in self.raw.get("references") or []:
            if reference.get("refType") == "CHILD_OF":
                return str(reference["spanID"])
        return None

    @property
    def tags(self) -> dict[str, Any]:
        return {tag["key"]: tag["value"] for tag in self.raw.get("tags") or []}

    @property
    def kind(self) -> str:
        return str(self.tags.get("span.kind", ""))

    @property
    def http_status(self) -> int | None:
        # The instrumentations write the older semantic conventions unless told otherwise
        # (OTEL_SEMCONV_STABILITY_OPT_IN): http.status_code rather than http.response.status_code.
        tags = self.tags
        value = tags.get("http.response.status_code", tags.get("http.status_code"))
        return int(value) if value is not None else None

    @property
    def is_error(self) -> bool:
        return self.tags.get("otel.status_code") == "ERROR" or self.tags.get("error") is True


def spans_of(trace: dict[str, Any]) -> list[Span]:
    processes = trace["processes"]
    return [Span(span, processes[span["processID"]]["serviceName"]) for span in trace["spans"]]


def trace_of_request(
    jaeger: JaegerServer, service: str, request_id: str, *, settle: Callable[[list[Span]], bool]
) -> list[Span]:
    """The one trace with a ``service`` span tagged with ``request_id``, once ``settle`` says
    its spans have all arrived (each process exports on its own, a fraction of a second apart)."""

    def found() -> list[Span] | None:
        traces = jaeger.traces(service, tags={"checkout.request_id": request_id})
        assert len(traces) <= 1, [t["traceID"] for t in traces]
        if not traces:
            return None
        spans = spans_of(traces[0])
        return spans if settle(spans) else None

    result: list[Span] = eventually(found, timeout=30, interval=0.5)
    return result
