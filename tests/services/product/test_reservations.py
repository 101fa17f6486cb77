"""Internal stock reservations: all-or-nothing, idempotent, never below zero, key required."""

from __future__ import annotations

import asyncio
import uuid

from tests.conftest import RunningService
from tests.infra.keys import Keyrings
from tests.services.product.conftest import product_id


def internal(keyrings: Keyrings) -> dict[str, str]:
    return {"X-Internal-Api-Key": keyrings.internal_key()}


async def stock(service: RunningService, pid: str) -> int:
    return (await service.client.get(f"/api/v1/products/{pid}")).json()["stock"]


async def reserve(service: RunningService, keyrings: Keyrings, items, rid: str | None = None):
    return await service.client.post(
        "/internal/v1/reservations",
        json={"reservationId": rid or uuid.uuid4().hex, "items": items},
        headers=internal(keyrings),
    )


async def test_reserve_commit_takes_stock_once(stocked: RunningService, keyrings: Keyrings) -> None:
    pid = await product_id(stocked, "KB-001")
    response = await reserve(stocked, keyrings, [{"productId": pid, "quantity": 3}], "r-1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "reserved"
    assert body["lines"][0]["priceCents"] == 8999 and body["lines"][0]["name"]
    again = await reserve(stocked, keyrings, [{"productId": pid, "quantity": 3}], "r-1")
    assert again.status_code == 200 and again.json()["state"] == "reserved"
    assert await stock(stocked, pid) == 22  # a retried reservation takes nothing twice
    commit = await stocked.client.post(
        "/internal/v1/reservations/r-1/commit", headers=internal(keyrings)
    )
    assert commit.json()["state"] == "committed"
    release = await stocked.client.post(
        "/internal/v1/reservations/r-1/release", headers=internal(keyrings)
    )
    assert release.status_code == 409  # committed stock is sold
    assert await stock(stocked, pid) == 22


async def test_release_gives_stock_back_and_is_idempotent(
    stocked: RunningService, keyrings: Keyrings
) -> None:
    pid = await product_id(stocked, "HS-003")
    await reserve(stocked, keyrings, [{"productId": pid, "quantity": 5}], "r-2")
    assert await stock(stocked, pid) == 10
    for _ in range(2):
        released = await stocked.client.post(
            "/internal/v1/reservations/r-2/release", headers=internal(keyrings)
        )
        assert released.json()["state"] == "released"
    assert await stock(stocked, pid) == 15
    unknown = await stocked.client.post(
        "/internal/v1/reservations/never-made/release", headers=internal(keyrings)
    )
    assert unknown.status_code == 200


async def test_shortage_takes_nothing_and_names_the_products(
    stocked: RunningService, keyrings: Keyrings
) -> None:
    kb, hs = await product_id(stocked, "KB-001"), await product_id(stocked, "HS-003")
    response = await reserve(
        stocked, keyrings, [{"productId": kb, "quantity": 2}, {"productId": hs, "quantity": 16}]
    )
    assert response.status_code == 409
    problem = response.json()
    assert problem["outOfStock"] == [{"productId": hs, "name": "Studio Headphones"}]
    assert "Studio Headphones" in problem["detail"]
    assert await stock(stocked, kb) == 25 and await stock(stocked, hs) == 15


async def test_unknown_products_are_404(stocked: RunningService, keyrings: Keyrings) -> None:
    response = await reserve(stocked, keyrings, [{"productId": "0" * 24, "quantity": 1}])
    assert response.status_code == 404
    assert response.json()["unknownProducts"] == ["0" * 24]


async def test_concurrent_reservations_of_the_last_units(
    stocked: RunningService, keyrings: Keyrings
) -> None:
    pid = await product_id(stocked, "KB-001")
    results = await asyncio.gather(
        *(reserve(stocked, keyrings, [{"productId": pid, "quantity": 2}]) for _ in range(20))
    )
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) == 12 and codes.count(409) == 8  # 25 units, 2 each: 12 fit
    assert await stock(stocked, pid) == 1


async def test_internal_routes_need_the_internal_key(
    stocked: RunningService, keyrings: Keyrings
) -> None:
    pid = await product_id(stocked, "KB-001")
    body = {"reservationId": "r-x", "items": [{"productId": pid, "quantity": 1}]}
    missing = await stocked.client.post("/internal/v1/reservations", json=body)
    wrong = await stocked.client.post(
        "/internal/v1/reservations", json=body, headers={"X-Internal-Api-Key": "nope"}
    )
    user_token = await stocked.client.post(
        "/internal/v1/reservations", json=body, headers=keyrings.bearer("u", "admin")
    )
    assert missing.status_code == wrong.status_code == user_token.status_code == 401
    assert await stock(stocked, pid) == 25


async def test_bad_reservation_bodies(stocked: RunningService, keyrings: Keyrings) -> None:
    pid = await product_id(stocked, "KB-001")
    for items in (
        [],
        [{"productId": pid, "quantity": 0}],
        [{"productId": {"$ne": 1}, "quantity": 1}],
    ):
        response = await reserve(stocked, keyrings, items)
        assert response.status_code == 400, items
    assert await stocked.app.state.db.reservations.count_documents({}) == 0
