"""What the order worker does for checkouts: a checkout that died between taking the stock and
placing its order gets its stock back (and a late retry of its product call takes nothing);
placed orders are settled with product, after which nothing can give their stock back; an order
whose checkout is still running is nobody's to see, and a keyed retry of it is told to wait.

The orders a dead checkout leaves are written here as it leaves them (the stock taken by a real
call to product with the order's reservation id), with their deadline already past, and a worker
that looks every 0.1 s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from tests.conftest import RunningService
from tests.services.conftest import (
    BUSY_WORKER,
    FAST_RETRIES,
    StartService,
    add_to_cart,
    assert_problem,
    checkout,
    eventually,
    product_id,
    stock,
)

RESERVATIONS = "/internal/v1/reservations"


@pytest.fixture
async def busy_order(
    catalogue: RunningService, cart: RunningService, start_service: StartService
) -> AsyncIterator[RunningService]:
    """The order service with a worker that looks every 0.1 s and finishes at once."""
    async with start_service(
        "order",
        product_url=catalogue.url,
        cart_url=cart.url,
        **BUSY_WORKER,
        **FAST_RETRIES,
    ) as svc:
        yield svc


async def sell(
    catalogue: RunningService, internal: dict[str, str], rid: str, pid: str, units: int, **more: Any
) -> Any:
    """Product's one-phase sale, as a checkout calls it."""
    body = {"reservationId": rid, "items": [{"productId": pid, "quantity": units}], "commit": True}
    return await catalogue.client.post(RESERVATIONS, json={**body, **more}, headers=internal)


async def marks(catalogue: RunningService, pid: str) -> list[str]:
    doc = await catalogue.app.state.db.products.find_one({"_id": ObjectId(pid)})
    return list(doc.get("reservations", []))


def a_dead_checkouts_order(
    oid: ObjectId, user_id: str, pid: str, units: int, reserve_by: datetime
) -> dict[str, Any]:
    return {
        "_id": oid,
        "userId": user_id,
        "checkoutKey": f"order:{oid}",
        "status": "pending",
        "lines": [{"productId": pid, "quantity": units}],
        "reservationId": f"order-{oid}",
        "reserveBy": reserve_by,
        "pendingSteps": ["placeOrder"],
        "createdAt": reserve_by - timedelta(seconds=10),
        "updatedAt": reserve_by - timedelta(seconds=10),
    }


async def test_a_checkout_that_died_after_taking_stock_gives_it_back(
    busy_order: RunningService, catalogue: RunningService, shopper, internal
) -> None:
    ada = shopper()
    kb = await product_id(catalogue, "KB-001")
    oid = ObjectId()
    rid = f"order-{oid}"
    reserve_by = datetime.now(UTC) - timedelta(seconds=6)  # and the margin past, too
    sold = await sell(catalogue, internal, rid, kb, 3)
    assert sold.status_code == 200, sold.text
    assert await stock(catalogue, kb) == 22 and rid in await marks(catalogue, kb)
    orders = busy_order.app.state.db.orders
    await orders.insert_one(a_dead_checkouts_order(oid, ada.user_id, kb, 3, reserve_by))

    async def gone() -> bool:
        return await orders.count_documents({"_id": oid}) == 0

    assert await eventually(gone)
    assert await stock(catalogue, kb) == 25
    assert rid not in await marks(catalogue, kb)
    # The dead checkout's product call, retried late, cannot take the stock again: it carries
    # the order's deadline.
    late = await sell(catalogue, internal, rid, kb, 3, notAfter=reserve_by.isoformat())
    assert "deadline" in assert_problem(late, 409)["detail"]
    assert await stock(catalogue, kb) == 25
    mine = (await busy_order.client.get("/api/v1/orders", headers=ada.headers)).json()
    assert mine["total"] == 0


async def test_a_dead_checkout_whose_call_took_nothing_is_removed_all_the_same(
    busy_order: RunningService, catalogue: RunningService, shopper
) -> None:
    bea = shopper()
    kb = await product_id(catalogue, "KB-001")
    oid = ObjectId()
    reserve_by = datetime.now(UTC) - timedelta(seconds=6)
    orders = busy_order.app.state.db.orders
    await orders.insert_one(a_dead_checkouts_order(oid, bea.user_id, kb, 2, reserve_by))

    async def gone() -> bool:
        return await orders.count_documents({"_id": oid}) == 0

    assert await eventually(gone)
    assert await stock(catalogue, kb) == 25  # nothing given back that was never taken


async def test_placed_orders_are_settled_and_then_nothing_gives_their_stock_back(
    busy_order: RunningService, cart: RunningService, catalogue: RunningService, shopper, internal
) -> None:
    cat = shopper()
    kb = await product_id(catalogue, "KB-001")
    await add_to_cart(cart, cat, kb, 2)
    placed = await checkout(busy_order, cat)
    assert placed.status_code == 201, placed.text
    oid = ObjectId(placed.json()["id"])
    orders = busy_order.app.state.db.orders
    stored = await orders.find_one({"_id": oid})
    rid = stored["reservationId"]
    assert stored["settleBy"] > stored["reserveBy"] and rid in await marks(catalogue, kb)
    # As if its deadline had passed: the worker settles it with product.
    await orders.update_one({"_id": oid}, {"$set": {"settleBy": datetime.now(UTC)}})

    async def settled() -> bool:
        doc = await orders.find_one({"_id": oid})
        return "settleBy" not in doc and rid not in await marks(catalogue, kb)

    assert await eventually(settled)
    # A release of a settled sale gives nothing back: its mark is gone.
    items = {"items": [{"productId": kb, "quantity": 2}]}
    released = await catalogue.client.post(
        f"{RESERVATIONS}/{rid}/release", json=items, headers=internal
    )
    assert released.status_code == 200, released.text
    assert await stock(catalogue, kb) == 23
    shown = await busy_order.client.get(f"/api/v1/orders/{oid}", headers=cat.headers)
    assert shown.json()["status"] == "placed"


async def test_an_order_whose_checkout_is_running_is_nobodys_to_see(
    order: RunningService, cart: RunningService, catalogue: RunningService, shopper
) -> None:
    dan = shopper()
    admin = shopper(role="admin")
    kb = await product_id(catalogue, "KB-001")
    oid = ObjectId()
    running = a_dead_checkouts_order(
        oid, dan.user_id, kb, 1, datetime.now(UTC) + timedelta(seconds=60)
    )
    running["checkoutKey"] = f"key:{dan.user_id}:in-flight"
    await order.app.state.db.orders.insert_one(running)
    for who in (dan, admin):
        one = await order.client.get(f"/api/v1/orders/{oid}", headers=who.headers)
        assert_problem(one, 404)
    listed = (await order.client.get("/api/v1/orders", headers=dan.headers)).json()
    assert listed["items"] == [] and listed["total"] == 0
    # The same keyed checkout, retried while the first is running: told to wait, not a second
    # order and not the first one's unfinished answer.
    await add_to_cart(cart, dan, kb, 1)
    retried = await checkout(order, dan, key="in-flight")
    assert "in progress" in assert_problem(retried, 409)["detail"]
    assert await stock(catalogue, kb) == 25
    # Another key is another checkout.
    other = await checkout(order, dan, key="another")
    assert other.status_code == 201, other.text
