"""A database that stops: the four services keep answering, with 503 problem+json and Retry-After
on every route that needs it (never a 500 or a hang), /readyz says not ready, and both recover by
themselves once the same server is back - tested with the real database process stopped and
started again on its port and its files, nothing restarted on the services' side."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.local.mongo_server import MongoServer, find_or_start_mongo, free_port
from tests.conftest import RunningService
from tests.infra.keys import Keyrings
from tests.services.conftest import PROBLEM, Shopper, product_id, run_all_services

PASSWORD = "database faults password"


class RestartableDatabase:
    """The MongoDB-protocol server of these tests, on a port and folder of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.server: MongoServer = find_or_start_mongo(folder, self.port)

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server = find_or_start_mongo(self.folder, self.port)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[RestartableDatabase]:
    db = RestartableDatabase(tmp_path / "database")
    if db.server.kind == "external":
        pytest.skip("MONGO_URI names an external server, which these tests cannot stop")
    yield db
    db.stop()


def requests(shopper: Shopper, pid: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(service, method, path, options): a route of each kind that needs the database."""
    auth = {"headers": shopper.headers}
    return [
        ("auth", "POST", "/api/v1/auth/register",
         {"json": {"email": "late@example.com", "password": PASSWORD}}),
        ("auth", "POST", "/api/v1/auth/token",
         {"json": {"email": "early@example.com", "password": PASSWORD}}),
        ("product", "GET", "/api/v1/products", {}),
        ("product", "GET", f"/api/v1/products/{pid}", {}),
        ("cart", "GET", "/api/v1/cart", auth),
        ("cart", "POST", "/api/v1/cart/items", {**auth, "json": {"productId": pid, "quantity": 1}}),
        ("order", "GET", "/api/v1/orders", auth),
        ("order", "POST", "/api/v1/orders",
         {"headers": {**shopper.headers, "Idempotency-Key": "faults-1"}}),
    ]  # fmt: skip


async def answer(services: dict[str, RunningService], request: Any) -> tuple[int, Any]:
    service, method, path, options = request
    response = await services[service].client.request(method, path, **options)
    return response.status_code, response


async def test_a_stopped_database_is_503_with_retry_after_and_both_recover(
    database: RestartableDatabase, keyrings: Keyrings, db_prefix: str, shopper: Any
) -> None:
    async with run_all_services(
        database.server, keyrings, db_prefix, mongo_timeout_seconds=1.0
    ) as services:
        customer = shopper()
        pid = await product_id(services["product"], "KB-001")
        signed_up = await services["auth"].client.post(
            "/api/v1/auth/register", json={"email": "early@example.com", "password": PASSWORD}
        )
        assert signed_up.status_code == 201, signed_up.text
        before = [(await answer(services, r))[0] for r in requests(customer, pid)]
        assert all(status < 400 for status in before[2:]), before  # the reads and writes work

        database.stop()
        for request in requests(customer, pid):
            began = time.monotonic()
            status, response = await answer(services, request)
            assert status == 503, (request[:3], status, response.text)
            assert response.headers["content-type"].startswith(PROBLEM)
            assert int(response.headers["retry-after"]) >= 1
            # Bounded by the database timeout (1 s here), plus a retry: no hang.
            assert time.monotonic() - began < 10, request[:3]
        for name, service in services.items():
            ready = await service.client.get("/readyz")
            assert ready.status_code == 503, (name, ready.text)
            assert (await service.client.get("/healthz")).status_code == 200, name

        database.start()
        deadline = time.monotonic() + 60
        for name, service in services.items():
            while (await service.client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, f"{name} never became ready again"
                await asyncio.sleep(0.2)
        # Every route works again, and what was written before the outage is still there.
        after = [(await answer(services, r))[0] for r in requests(customer, pid)]
        assert all(status < 500 for status in after), after
        signed_in = await services["auth"].client.post(
            "/api/v1/auth/token", json={"email": "early@example.com", "password": PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text
