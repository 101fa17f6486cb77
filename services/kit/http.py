"""Service-to-service calls on httpx: timeouts, bounded retries with backoff and jitter, the
request id passed along, and the internal API key attached when asked for.

Only idempotent methods, and writes that carry an ``Idempotency-Key``, are retried; a dependency
that stays down surfaces as :class:`DependencyUnavailable`, answered as 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, TypeVar

import httpx
import msgspec

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
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 1.0)),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            transport=transport,
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
    ) -> httpx.Response:
        method = method.upper()
        retryable = method in IDEMPOTENT_METHODS or IDEMPOTENCY_HEADER in (headers or {})
        last_reason = ""
        for attempt in range(1 + self.retries):
            if attempt:
                await asyncio.sleep(self._delay(attempt - 1))
            SERVICE_CALLS.labels(self.name).inc()
            try:
                response = await self._client.request(
                    method,
                    path,
                    json=json,
                    params=params,
                    headers=self._headers(headers, internal),
                )
            except httpx.TransportError as exc:
                last_reason = f"{type(exc).__name__}: {exc}"
                # A refused connection sent nothing, so even a plain write may be tried again;
                # anything else may have reached the server and is resent only when safe.
                if retryable or isinstance(exc, httpx.ConnectError):
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
