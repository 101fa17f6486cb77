"""Back-pressure: a service that has more requests in flight than it can serve answers the next
ones at once with 503 and ``Retry-After``, instead of letting them queue until clients time out.

One event loop serves a service's process, so every request admitted past what the process can
do per second only waits longer: at 256 connections on a service that does 400 requests/s, a
queue of all of them is 0.6 s of waiting for everyone, and the next burst pushes it past the
clients' timeouts. Capping the requests in flight (``MAX_IN_FLIGHT_REQUESTS``, per process) keeps
the latency of the admitted ones bounded, and the others learn within a millisecond that they
should come back (a problem+json 503 with ``Retry-After: 1``), which load balancers and the
service client (services/kit/http.py) treat as "try again".

The probes, the metrics and the key report are never refused: a kubelet that sees an overloaded
pod's ``/healthz`` fail would restart it, adding to the overload, and a key rotation waits on the
key report. Refused requests are counted in ``checkout_requests_shed_total``.
"""

from __future__ import annotations

import msgspec
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)
from prometheus_client import Counter

from services.kit.errors import PROBLEM_BASE, PROBLEM_JSON

SHED = Counter(
    "checkout_requests_shed",
    "Requests answered 503 at once because the process had MAX_IN_FLIGHT_REQUESTS in flight.",
)
# Always served: liveness, readiness, metrics and the key report of the rotation.
EXEMPT_PREFIXES = ("/healthz", "/readyz", "/metrics", "/internal/v1/keys")
RETRY_AFTER_SECONDS = 1


class Capacity:
    """The requests in flight in one app, against its limit (shared by every route's stack:
    Litestar builds the middleware stack once per route)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0


class LoadShedding:
    """ASGI middleware: at most ``capacity.limit`` HTTP requests in flight in this app."""

    def __init__(self, app: ASGIApp, capacity: Capacity) -> None:
        self.app = app
        self.capacity = capacity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        capacity = self.capacity
        if scope["type"] != ScopeType.HTTP or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        if capacity.in_flight >= capacity.limit:
            SHED.inc()
            await _refuse(scope, send)
            return
        capacity.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            capacity.in_flight -= 1


async def _refuse(scope: Scope, send: Send) -> None:
    body = msgspec.json.encode(
        {
            "type": PROBLEM_BASE + "overloaded",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "The service is at capacity; try again shortly.",
            "instance": scope["path"],
        }
    )
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 503,
        "headers": [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
        ],
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)
