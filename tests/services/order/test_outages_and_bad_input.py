"""A dependency that is down gets a quick 503 with Retry-After and leaves nothing behind; bad
input gets a 4xx problem and writes nothing; placed orders whose last steps had to wait are
finished by the background worker."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from tests.conftest import RunningService
from tests.infra.servers import free_port_url
from tests.services.conftest import (
    BUSY_WORKER,
    FAST_RETRIES,
    add_to_cart,
    assert_problem,
    checkout,
    eventually,
    product_id,
    stock,
    stored_orders,
)


async def test_product_down_at_checkout_is_a_quick_503_and_nothing_is_written(
    cart: RunningService, catalogue: RunningService, start_service, shopper
) -> None:
    ada = shopper()
    kb = await product_id(catalogue, "KB-001")
    await add_to_cart(cart, ada, kb, 2)
    async with start_service(
        "order", product_url=free_port_url(), cart_url=cart.url, **FAST_RETRIES
    ) as order:
        started = time.monotonic()
        response = await checkout(order, ada, key="while-down")
        assert time.monotonic() - started < 2
        problem = assert_problem(response, 503)
        assert response.headers["retry-after"] == "2"
        assert problem["dependency"] == "product"
        assert await stored_orders(order) == 0
        # What is left is the abandoned checkout's record: the worker gives its stock back
        # (whatever the lost call took) once product answers, then removes it.
        left = await order.app.state.db.orders.find_one({})
        assert left["status"] == "abandoned" and left["pendingSteps"] == ["releaseStock"]
        assert "userId" not in left
    view = (await cart.client.get("/api/v1/cart", headers=ada.headers)).json()
    assert [(x["productId"], x["quantity"]) for x in view["lines"]] == [(kb, 2)]


async def test_cart_stopped_under_a_running_order_service(
    catalogue: RunningService, start_service, shopper
) -> None:
    bea = shopper()
    kb = await product_id(catalogue, "KB-001")
    async with contextlib.AsyncExitStack() as cart_running:
        cart = await cart_running.enter_async_context(
            start_service("cart", product_url=catalogue.url, **FAST_RETRIES)
        )
        await add_to_cart(cart, bea, kb, 1)
        async with start_service(
            "order", product_url=catalogue.url, cart_url=cart.url, **FAST_RETRIES
        ) as order:
            await cart_running.aclose()
            started = time.monotonic()
            response = await checkout(order, bea)
            assert time.monotonic() - started < 2
            assert assert_problem(response, 503)["dependency"] == "cart"
            assert response.headers["retry-after"] == "2"
            assert await stored_orders(order) == 0
    assert await stock(catalogue, kb) == 25
    assert await catalogue.app.state.db.reservations.count_documents({}) == 0


async def test_the_worker_finishes_orders_whose_steps_had_to_wait(
    cart: RunningService, catalogue: RunningService, start_service, shopper, internal
) -> None:
    """Orders stored while product or cart was unreachable for their last steps (written here as
    the checkout leaves them) are completed, or cancelled if their stock was lost."""
    cat = shopper()
    kb, hs = await product_id(catalogue, "KB-001"), await product_id(catalogue, "HS-003")
    await add_to_cart(cart, cat, kb, 5)  # 3 were ordered, 2 added during that checkout
    await add_to_cart(cart, cat, hs, 1)
    to_commit, to_trim, lost = ObjectId(), ObjectId(), ObjectId()
    reserve = await catalogue.client.post(
        "/internal/v1/reservations",
        json={"reservationId": f"order-{to_commit}", "items": [{"productId": kb, "quantity": 3}]},
        headers=internal,
    )
    assert reserve.status_code == 200
    line = {
        "productId": kb,
        "name": "Mechanical Keyboard",
        "quantity": 3,
        "unitPriceCents": 8999,
        "currency": "EUR",
        "lineTotalCents": 26997,
    }
    a_while_ago = datetime.now(UTC) - timedelta(minutes=1)

    def stored(oid: ObjectId, steps: list[str]) -> dict:
        return {
            "_id": oid,
            "userId": cat.user_id,
            "checkoutKey": f"order:{oid}",
            "status": "placed",
            "lines": [line],
            "totalCents": 26997,
            "currency": "EUR",
            "reservationId": f"order-{oid}",
            "pendingSteps": steps,
            "createdAt": a_while_ago,
            "updatedAt": a_while_ago,
        }

    async with start_service(
        "order",
        product_url=catalogue.url,
        cart_url=cart.url,
        **BUSY_WORKER,
        **FAST_RETRIES,
    ) as order:
        orders = order.app.state.db.orders
        await orders.insert_many(
            [
                stored(to_commit, ["commitStock"]),
                stored(to_trim, ["trimCart"]),
                stored(lost, ["commitStock", "trimCart"]),
            ]
        )

        async def all_done() -> bool:
            return await orders.count_documents({"pendingSteps.0": {"$exists": True}}) == 0

        assert await eventually(all_done)
        reservation = await catalogue.app.state.db.reservations.find_one(
            {"_id": f"order-{to_commit}"}
        )
        assert reservation["state"] == "committed"
        assert await stock(catalogue, kb) == 22
        cart_now = await cart.app.state.db.cart_lines.find({"userId": cat.user_id}).to_list()
        assert {d["productId"]: d["quantity"] for d in cart_now} == {kb: 2, hs: 1}
        cancelled = await order.client.get(f"/api/v1/orders/{lost}", headers=cat.headers)
        assert cancelled.json()["status"] == "cancelled"
        assert "reservation expired" in cancelled.json()["cancelReason"]


@pytest.mark.parametrize(
    "key",
    [pytest.param("k" * 129, id="too-long"), pytest.param("has space", id="space")],
)
async def test_bad_idempotency_keys(
    order: RunningService, cart: RunningService, catalogue: RunningService, shopper, key
) -> None:
    dan = shopper()
    await add_to_cart(cart, dan, await product_id(catalogue, "KB-001"), 1)
    response = await checkout(order, dan, key=key)
    problem = assert_problem(response, 400)
    assert problem["errors"][0]["key"] == "idempotency_key"
    assert problem["errors"][0]["source"] == "header"
    assert await stored_orders(order) == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"items": [', id="malformed"),
        pytest.param(b'{"items": []}', id="no-items"),
        pytest.param(b'{"items": {"productId": "a", "quantity": 1}}', id="not-a-list"),
        pytest.param(b'{"items": [{"productId": "a", "quantity": 0}]}', id="zero"),
        pytest.param(b'{"items": [{"productId": "a", "quantity": 100}]}', id="too-many"),
        pytest.param(b'{"items": [{"productId": {"$gt": ""}, "quantity": 1}]}', id="injection"),
        pytest.param(b'{"items": [{"productId": "a"}]}', id="missing-quantity"),
        pytest.param(b'{"userId": {"$ne": null}}', id="user-injection"),
        pytest.param(b'{"items": [{"productId": "a", "quantity": 1}], "total": 0}', id="unknown"),
        pytest.param(b'"items"', id="string"),
    ],
)
async def test_seed_create_rejects_bad_bodies(
    order: RunningService, catalogue: RunningService, shopper, body: bytes
) -> None:
    response = await order.client.post(
        "/api/order",
        content=body,
        headers={**shopper().headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 400)
    assert await stored_orders(order) == 0
    assert await catalogue.app.state.db.reservations.count_documents({}) == 0


async def test_oversized_body_is_413(order: RunningService, shopper) -> None:
    items = [{"productId": "a" * 64, "quantity": 1}] * 2000
    response = await order.client.post(
        "/api/order", json={"items": items}, headers=shopper().headers
    )
    assert_problem(response, 413)
    assert await stored_orders(order) == 0
