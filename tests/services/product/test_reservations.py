"""Internal stock reservations, two-phase and committed at once: all-or-nothing, idempotent,
never below zero, key required."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from bson import ObjectId

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


# --- reservations committed at once (order's checkout) -----------------------------------------


async def sell(
    service: RunningService, keyrings: Keyrings, items, rid: str, **extra
) -> httpx.Response:
    return await service.client.post(
        "/internal/v1/reservations",
        json={"reservationId": rid, "items": items, "commit": True, **extra},
        headers=internal(keyrings),
    )


async def marks(service: RunningService, pid: str) -> list[str]:
    doc = await service.app.state.db.products.find_one({"_id": ObjectId(pid)})
    return list(doc.get("reservations", []))


async def test_a_sale_takes_stock_once_with_prices_and_keeps_no_record(
    stocked: RunningService, keyrings: Keyrings
) -> None:
    kb, ms = await product_id(stocked, "KB-001"), await product_id(stocked, "MS-002")
    items = [{"productId": kb, "quantity": 3}, {"productId": ms, "quantity": 1}]
    first = await sell(stocked, keyrings, items, "s-1")
    assert first.status_code == 200, first.text
    assert first.json()["state"] == "committed"
    assert [(x["productId"], x["quantity"], x["priceCents"]) for x in first.json()["lines"]] == [
        (kb, 3, 8999),
        (ms, 1, 2999),
    ]
    # A retry of the same call (its answer lost) takes nothing twice and answers the same lines.
    again = await sell(stocked, keyrings, items, "s-1")
    assert again.status_code == 200 and again.json()["lines"] == first.json()["lines"]
    assert await stock(stocked, kb) == 22 and await stock(stocked, ms) == 59
    assert await stocked.app.state.db.reservations.count_documents({}) == 0
    assert await marks(stocked, kb) == ["s-1"]
    # Sold: a commit is not needed, and settling forgets the marks (twice is a no-op).
    for expected in (2, 0):
        settled = await stocked.client.post(
            "/internal/v1/reservations/settle",
            json={"reservationIds": ["s-1", "never-made"]},
            headers=internal(keyrings),
        )
        assert settled.status_code == 200 and settled.json() == {"products": expected}
    assert await marks(stocked, kb) == [] and await marks(stocked, ms) == []
    assert await stock(stocked, kb) == 22


async def test_a_sale_given_back_with_its_items_returns_each_unit_once(
    stocked: RunningService, keyrings: Keyrings
) -> None:
    hs = await product_id(stocked, "HS-003")
    items = [{"productId": hs, "quantity": 4}]
    assert (await sell(stocked, keyrings, items, "s-2")).status_code == 200
    for _ in range(2):
        released = await stocked.client.post(
            "/internal/v1/reservations/s-2/release",
            json={"items": items},
            headers=internal(keyrings),
        )
        assert released.status_code == 200 and released.json()["state"] == "released"
    assert await stock(stocked, hs) == 15 and await marks(stocked, hs) == []
    # Items this reservation never took give nothing back.
    other = await stocked.client.post(
        "/internal/v1/reservations/s-never/release",
        json={"items": items},
        headers=internal(keyrings),
    )
    assert other.status_code == 200 and await stock(stocked, hs) == 15


async def test_a_sale_short_of_one_item_takes_nothing(
    stocked: RunningService, keyrings: Keyrings
) -> None:
    kb, hs = await product_id(stocked, "KB-001"), await product_id(stocked, "HS-003")
    items = [{"productId": kb, "quantity": 2}, {"productId": hs, "quantity": 16}]
    response = await sell(stocked, keyrings, items, "s-3")
    assert response.status_code == 409
    assert response.json()["outOfStock"] == [{"productId": hs, "name": "Studio Headphones"}]
    assert await stock(stocked, kb) == 25 and await stock(stocked, hs) == 15
    assert await marks(stocked, kb) == [] and await marks(stocked, hs) == []
    unknown = await sell(
        stocked, keyrings, [*items[:1], {"productId": "0" * 24, "quantity": 1}], "s-4"
    )
    assert unknown.status_code == 404 and unknown.json()["unknownProducts"] == ["0" * 24]
    assert await stock(stocked, kb) == 25 and await marks(stocked, kb) == []


async def test_a_sale_after_its_deadline_takes_nothing(
    stocked: RunningService, keyrings: Keyrings
) -> None:
    kb = await product_id(stocked, "KB-001")
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    late = await sell(stocked, keyrings, [{"productId": kb, "quantity": 1}], "s-5", notAfter=past)
    assert late.status_code == 409 and "deadline" in late.json()["detail"]
    assert await stock(stocked, kb) == 25
    future = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    on_time = await sell(
        stocked, keyrings, [{"productId": kb, "quantity": 1}], "s-6", notAfter=future
    )
    assert on_time.status_code == 200 and await stock(stocked, kb) == 24


async def test_concurrent_sales_of_the_last_units_never_go_below_zero(
    stocked: RunningService, keyrings: Keyrings
) -> None:
    kb, ms = await product_id(stocked, "KB-001"), await product_id(stocked, "MS-002")
    items = [{"productId": kb, "quantity": 2}, {"productId": ms, "quantity": 1}]
    results = await asyncio.gather(
        *(sell(stocked, keyrings, items, f"race-{n}") for n in range(20))
    )
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) == 12 and codes.count(409) == 8  # 25 keyboards, 2 each: 12 fit
    assert await stock(stocked, kb) == 1 and await stock(stocked, ms) == 60 - 12
    sold = {r.json()["reservationId"] for r in results if r.status_code == 200}
    assert set(await marks(stocked, kb)) == sold == set(await marks(stocked, ms))


async def test_bad_sale_bodies_name_the_field(stocked: RunningService, keyrings: Keyrings) -> None:
    kb = await product_id(stocked, "KB-001")
    items = [{"productId": kb, "quantity": 1}]
    for extra, field in (({"notAfter": "tomorrow"}, "notAfter"), ({"commit": "yes"}, "commit")):
        response = await sell(stocked, keyrings, items, "s-bad", **extra)
        assert response.status_code == 400, response.text
        assert field in response.text
    settle = await stocked.client.post(
        "/internal/v1/reservations/settle", json={"reservationIds": []}, headers=internal(keyrings)
    )
    assert settle.status_code == 400 and "reservationIds" in settle.text
    release = await stocked.client.post(
        "/internal/v1/reservations/x/release", json={"items": []}, headers=internal(keyrings)
    )
    assert release.status_code == 400
    assert await stock(stocked, kb) == 25
