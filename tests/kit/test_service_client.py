"""The service-to-service client against a real HTTP server on localhost."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from litestar import Litestar, Request, Response, route
from litestar.params import FromPath

from services.keys.keyring import KeyRing, generate_key
from services.keys.report import INTERNAL_KEY_HEADER
from services.kit.http import DependencyUnavailable, ServiceClient
from services.kit.observability import set_request_id
from tests.infra.keys import write_ring
from tests.infra.servers import free_port_url, serve_app

calls: Counter[str] = Counter()
seen_headers: list[dict[str, str]] = []


@route("/flaky/{fails:int}", http_method=["GET", "POST"])
async def flaky(request: Request[Any, Any, Any], fails: FromPath[int]) -> Response[dict[str, int]]:
    key = f"{request.method} {request.url.path} {request.headers.get('idempotency-key')}"
    calls[key] += 1
    seen_headers.append(dict(request.headers))
    if calls[key] <= fails:
        return Response({"attempt": calls[key]}, status_code=503)
    return Response({"attempt": calls[key]}, status_code=200)


@route("/slow", http_method=["POST"])
async def slow() -> dict[str, str]:
    await asyncio.sleep(0.6)
    return {"answer": "late"}


@pytest.fixture
async def server() -> Any:
    calls.clear()
    seen_headers.clear()
    async with serve_app(Litestar([flaky, slow])) as url:
        yield url


async def test_idempotent_calls_are_retried_until_success(server: str) -> None:
    client = ServiceClient("flaky", server, retries=3, backoff=0.01)
    response = await client.request("GET", "/flaky/2")
    assert response.status_code == 200 and response.json() == {"attempt": 3}
    await client.aclose()


async def test_retries_are_bounded(server: str) -> None:
    client = ServiceClient("flaky", server, retries=2, backoff=0.01)
    with pytest.raises(DependencyUnavailable) as caught:
        await client.request("GET", "/flaky/10")
    assert caught.value.status_code == 503 and caught.value.headers["Retry-After"] == "2"
    assert sum(calls.values()) == 3
    await client.aclose()


async def test_plain_writes_are_not_retried_but_keyed_writes_are(server: str) -> None:
    client = ServiceClient("flaky", server, retries=3, backoff=0.01)
    with pytest.raises(DependencyUnavailable):
        await client.request("POST", "/flaky/1")
    assert calls["POST /flaky/1 None"] == 1
    keyed = await client.request("POST", "/flaky/1", headers={"Idempotency-Key": "k-1"})
    assert keyed.status_code == 200 and calls["POST /flaky/1 k-1"] == 2
    await client.aclose()


async def test_a_dead_dependency_fails_fast() -> None:
    client = ServiceClient("dead", free_port_url(), retries=3, backoff=0.01, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(DependencyUnavailable):
        await client.request("POST", "/anything")
    assert time.monotonic() - started < 2.0
    await client.aclose()


async def test_request_id_and_internal_key_are_passed_along(server: str, tmp_path) -> None:
    key = generate_key("api-7")
    write_ring(tmp_path / "ring.json", "api-7", [key])
    client = ServiceClient(
        "flaky", server, internal_keys=KeyRing(tmp_path / "ring.json"), retries=0
    )
    set_request_id("req-42")
    try:
        await client.request("GET", "/flaky/0", internal=True)
    finally:
        set_request_id(None)
    assert seen_headers[-1]["x-request-id"] == "req-42"
    assert seen_headers[-1][INTERNAL_KEY_HEADER.lower()] == key.secret
    await client.aclose()


async def test_a_refused_connection_sent_nothing_so_a_plain_write_is_tried_again() -> None:
    from services.kit.counters import SERVICE_CALLS

    client = ServiceClient("refused", free_port_url(), retries=2, backoff=0.01, timeout=1.0)
    before = SERVICE_CALLS.labels("refused")._value.get()
    with pytest.raises(DependencyUnavailable) as caught:
        await client.request("POST", "/orders", json={})
    assert SERVICE_CALLS.labels("refused")._value.get() - before == 3  # 1 + 2 retries
    assert "ClientConnectorError" in caught.value.reason or "Connect" in caught.value.reason
    await client.aclose()


async def test_a_call_slow_by_design_waits_its_own_timeout_and_others_keep_theirs(
    server: str,
) -> None:
    client = ServiceClient("slow", server, timeout=0.2, retries=0)
    try:
        with pytest.raises(DependencyUnavailable) as caught:
            await client.request("POST", "/slow")
        assert "ReadTimeout" in caught.value.reason
        answer = await client.request("POST", "/slow", read_timeout=5.0)
        assert answer.status_code == 201 and answer.json() == {"answer": "late"}
        with pytest.raises(DependencyUnavailable):  # the override was for that call only
            await client.request("POST", "/slow")
    finally:
        await client.aclose()
