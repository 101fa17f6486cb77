"""Back-pressure over real HTTP: past the in-flight limit, an answer is a quick 503 with
Retry-After as problem+json; the admitted requests finish; the probes are always served."""

from __future__ import annotations

import asyncio
import time

import httpx
from litestar import Litestar, get
from litestar.middleware import DefineMiddleware

from services.kit.backpressure import SHED, Capacity, LoadShedding
from tests.infra.servers import serve_app

release = asyncio.Event()


@get("/slow")
async def slow() -> dict[str, str]:
    await release.wait()
    return {"status": "done"}


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def shedding_app(limit: int) -> Litestar:
    return Litestar(
        [slow, healthz], middleware=[DefineMiddleware(LoadShedding, capacity=Capacity(limit))]
    )


async def test_requests_past_the_limit_are_refused_at_once_and_the_rest_served() -> None:
    release.clear()
    shed_before = SHED._value.get()
    async with serve_app(shedding_app(3)) as url, httpx.AsyncClient(base_url=url) as client:
        admitted = [asyncio.create_task(client.get("/slow")) for _ in range(3)]
        await asyncio.sleep(0.3)  # the three are in flight, waiting
        started = time.monotonic()
        refused = await asyncio.gather(*(client.get("/slow") for _ in range(5)))
        refused_within = time.monotonic() - started
        probe = await client.get("/healthz")
        release.set()
        served = await asyncio.gather(*admitted)
        after = await client.get("/slow")  # capacity is back once they finished
    assert [r.status_code for r in served] == [200, 200, 200]
    for answer in refused:
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        assert problem["status"] == 503 and problem["instance"] == "/slow"
        assert problem["type"].endswith("/overloaded")
    assert refused_within < 2.0  # not queued behind the slow ones (they wait until released)
    assert probe.status_code == 200
    assert after.status_code == 200
    assert SHED._value.get() - shed_before == 5


async def test_the_limit_is_per_app_not_per_route() -> None:
    release.clear()
    capacity = Capacity(2)
    app = Litestar([slow, healthz], middleware=[DefineMiddleware(LoadShedding, capacity=capacity)])
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        waiting = [asyncio.create_task(client.get("/slow")) for _ in range(2)]
        await asyncio.sleep(0.3)
        assert capacity.in_flight == 2
        other = await client.get("/slow?x=1")
        release.set()
        await asyncio.gather(*waiting)
    assert other.status_code == 503
    assert capacity.in_flight == 0
