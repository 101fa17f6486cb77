"""Service-to-service calls on httpx: timeouts, bounded retries with backoff and jitter, the
request id passed along, and the internal API key attached when asked for.

The requests go out through aiohttp's connection pool (``httpx_aiohttp.AiohttpTransport``) rather
than httpcore on anyio: the same httpx API, at about a third of the CPU per call under
concurrency (``make bench-client`` measures both side by side). The pool keeps HTTP/1.1
connections alive for ``KEEPALIVE_SECONDS``, less than the 5 s the services' uvicorn keeps an
idle one open, so a call never goes out on a connection the server is closing.

Only idempotent methods, and writes that carry an ``Idempotency-Key``, are retried; a dependency
that stays down surfaces as :class:`DependencyUnavailable`, answered as 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, TypeVar

import aiohttp
import httpx
import msgspec
from httpx_aiohttp import AiohttpTransport

from services.keys.keyring import KeyRing
from services.keys.report import INTERNAL_KEY_HEADER
from services.kit.counters import SERVICE_CALLS
from services.kit.errors import ServiceUnavailable
from services.kit.observability import REQUEST_ID_HEADER, current_request_id

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})
IDEMPOTENCY_HEADER = "Idempotency-Key"
T = TypeVar("T")
# Below uvicorn's timeout_keep_alive (5 s): the client lets go of an idle connection first.
KEEPALIVE_SECONDS = 4.0
MAX_CONNECTIONS = 100


def pooled_transport(max_connections: int = MAX_CONNECTIONS) -> httpx.AsyncBaseTransport:
    """The transport every service client uses: aiohttp's keep-alive pool, at most
    ``max_connections`` open to the dependency, no cookies kept between calls. The session is
    made on first use, inside the event loop that uses it."""

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=KEEPALIVE_SECONDS)
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    return AiohttpTransport(client=session)


def sent_nothing(exc: httpx.TransportError) -> bool:
    """True when the request cannot have reached the server: the connection was refused."""
    return isinstance(exc, httpx.ConnectError) or isinstance(
        exc.__cause__, aiohttp.ClientConnectorError
    )


class DependencyUnavailable(ServiceUnavailable):
    def __init__(self, service: str, reason: str) -> None:
        super().__init__(
            f"The {service} service is unavailable; try again shortly.",
            extra={"dependency": service},
            retry_after=2,
        )
        self.service = service
        self.reason = reason


class ServiceClient:
    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        internal_keys: KeyRing | None = None,
        timeout: float = 3.0,
        retries: int = 3,
        backoff: float = 0.05,
        max_backoff: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.internal_keys = internal_keys
        self._attempts = SERVICE_CALLS.labels(name)  # the counter's child, looked up once
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 1.0)),
            transport=transport or pooled_transport(),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _headers(self, headers: dict[str, str] | None, internal: bool) -> dict[str, str]:
        out = dict(headers or {})
        request_id = current_request_id()
        if request_id:
            out.setdefault(REQUEST_ID_HEADER, request_id)
        if internal:
            if self.internal_keys is None:
                raise RuntimeError(f"client {self.name} has no internal keyring")
            out[INTERNAL_KEY_HEADER] = self.internal_keys.presentable_active()
        return out

    def _delay(self, attempt: int) -> float:
        # Full jitter: spreads retries of many callers instead of synchronising them.
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not security

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        internal: bool = False,
        read_timeout: float | None = None,
    ) -> httpx.Response:
        """``read_timeout`` replaces the client's read and write timeouts for this call (a call the
        dependency answers slowly by design, e.g. a password hash); connecting keeps its own."""
        method = method.upper()
        timeout = (
            httpx.Timeout(read_timeout, connect=self._client.timeout.connect)
            if read_timeout is not None
            else httpx.USE_CLIENT_DEFAULT
        )
        retryable = method in IDEMPOTENT_METHODS or IDEMPOTENCY_HEADER in (headers or {})
        last_reason = ""
        for attempt in range(1 + self.retries):
            if attempt:
                await asyncio.sleep(self._delay(attempt - 1))
            self._attempts.inc()
            try:
                response = await self._client.request(
                    method,
                    path,
                    json=json,
                    params=params,
                    headers=self._headers(headers, internal),
                    timeout=timeout,
                )
            except httpx.TransportError as exc:
                last_reason = f"{type(exc).__name__}: {exc}"
                # A refused connection sent nothing, so even a plain write may be tried again;
                # anything else may have reached the server and is resent only when safe.
                if retryable or sent_nothing(exc):
                    continue
                break
            if response.status_code in RETRY_STATUSES:
                last_reason = f"HTTP {response.status_code}"
                if retryable:
                    continue
                break
            return response
        log.warning(
            "dependency unavailable",
            extra={"dependency": self.name, "path": path, "reason": last_reason},
        )
        raise DependencyUnavailable(self.name, last_reason)

    def decode(self, response: httpx.Response, type_: type[T]) -> T:
        """Read a dependency's JSON answer as ``type_``; an unreadable answer is its failure."""
        try:
            return msgspec.json.decode(response.content, type=type_)
        except msgspec.DecodeError as exc:
            log.error(
                "unreadable dependency answer",
                extra={"dependency": self.name, "status": response.status_code, "error": str(exc)},
            )
            raise DependencyUnavailable(self.name, f"unreadable answer: {exc}") from exc

    def unexpected(self, response: httpx.Response) -> DependencyUnavailable:
        """The error for an answer the caller cannot use (e.g. a 500, or a 401: keys mismatch)."""
        log.error(
            "unexpected dependency answer",
            extra={
                "dependency": self.name,
                "path": response.request.url.path,
                "status": response.status_code,
            },
        )
        return DependencyUnavailable(self.name, f"HTTP {response.status_code}")
