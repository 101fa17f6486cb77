"""Checkout: the cart becomes an order with price snapshots, stock is taken exactly once, the
ordered lines leave the cart; failures leave no order and no stock held."""

from __future__ import annotations

import asyncio

from bson import ObjectId

from tests.conftest import RunningService
from tests.services.conftest import (
    add_to_cart,
    assert_problem,
    cart_view_once,
    checkout,
    product_id,
    set_stock,
    stock,
    stored_orders,
)


async def cart_lines(cart: RunningService, user_id: str) -> dict[str, int]:
    docs = await cart.app.state.db.cart_lines.find({"userId": user_id}).to_list()
    return {doc["productId"]: doc["quantity"] for doc in docs}


async def test_checkout_places_the_order_and_empties_the_cart(
    order: RunningService, cart: RunningService, catalogue: RunningService, shopper
) -> None:
    ada = shopper()
    kb, ms = await product_id(catalogue, "KB-001"), await product_id(catalogue, "MS-002")
    await add_to_cart(cart, ada, kb, 2)
    await add_to_cart(cart, ada, ms, 3)
    response = await checkout(order, ada)
    assert response.status_code == 201, response.text
    placed = response.json()
    assert placed["userId"] == ada.user_id and placed["status"] == "placed"
    assert placed["lines"] == [
        {
            "productId": kb,
            "name": "Mechanical Keyboard",
            "quantity": 2,
            "unitPriceCents": 8999,
            "currency": "EUR",
            "lineTotalCents": 17998,
        },
        {
            "productId": ms,
            "name": "Wireless Mouse",
            "quantity": 3,
            "unitPriceCents": 2999,
            "currency": "EUR",
            "lineTotalCents": 8997,
        },
    ]
    assert placed["totalCents"] == 17998 + 8997 and placed["currency"] == "EUR"
    assert await stock(catalogue, kb) == 23 and await stock(catalogue, ms) == 57
    assert await cart_lines(cart, ada.user_id) == {}
    stored = await order.app.state.db.orders.find_one({"_id": ObjectId(placed["id"])})
    assert stored["pendingSteps"] == [] and stored["status"] == "placed"
    # Sold in one call, with no reservation record: each product carries the order's mark
    # (until the worker settles it), by which a retry of the call is told apart.
    assert await catalogue.app.state.db.reservations.count_documents({}) == 0
    for pid in (kb, ms):
        product = await catalogue.app.state.db.products.find_one({"_id": ObjectId(pid)})
        assert stored["reservationId"] in product["reservations"]
    mine = (await order.client.get("/api/v1/orders", headers=ada.headers)).json()
    assert [o["id"] for o in mine["items"]] == [placed["id"]]
    one = await order.client.get(f"/api/v1/orders/{placed['id']}", headers=ada.headers)
    assert one.json() == placed


async def test_the_order_keeps_the_price_it_was_placed_at(
    order: RunningService, cart: RunningService, catalogue: RunningService, shopper
) -> None:
    bea = shopper()
    kb = await product_id(catalogue, "KB-001")
    await add_to_cart(cart, bea, kb, 1)
    placed = (await checkout(order, bea)).json()
    await catalogue.app.state.db.products.update_one(
        {"_id": ObjectId(kb)}, {"$set": {"priceCents": 1}}
    )
    again = (await order.client.get(f"/api/v1/orders/{placed['id']}", headers=bea.headers)).json()
    assert again["lines"][0]["unitPriceCents"] == 8999 and again["totalCents"] == 8999


async def test_a_retried_checkout_returns_the_first_order(
    order: RunningService, cart: RunningService, catalogue: RunningService, shopper
) -> None:
    cat = shopper()
    kb = await product_id(catalogue, "KB-001")
    await add_to_cart(cart, cat, kb, 2)
    first = await checkout(order, cat, key="retry-me")
    assert first.status_code == 201
    await add_to_cart(cart, cat, kb, 1)  # the cart changed since; the retry must not order it
    for _ in range(2):
        retried = await checkout(order, cat, key="retry-me")
        assert retried.status_code == 200
        assert retried.json() == first.json()
    assert await stock(catalogue, kb) == 23
    assert await stored_orders(order) == 1
    assert await cart_lines(cart, cat.user_id) == {kb: 1}
    # Keys belong to their user: another user's checkout with the same key is a new order.
    dan = shopper()
    await add_to_cart(cart, dan, kb, 1)
    theirs = await checkout(order, dan, key="retry-me")
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]


async def test_concurrent_retries_with_one_key_make_one_order(
    order: RunningService, cart: RunningService, catalogue: RunningService, shopper
) -> None:
    eve = shopper()
    kb = await product_id(catalogue, "KB-001")
    await add_to_cart(cart, eve, kb, 3)
    responses = await asyncio.gather(*(checkout(order, eve, key="double-click") for _ in range(6)))
    assert sorted(r.status_code for r in responses) == [200] * 5 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await stock(catalogue, kb) == 22
    assert await stored_orders(order) == 1


async def test_an_empty_cart_is_a_409_and_nothing_is_written(
    order: RunningService, catalogue: RunningService, shopper
) -> None:
    response = await checkout(order, shopper(), key="empty")
    assert "empty" in assert_problem(response, 409)["detail"]
    assert await stored_orders(order) == 0
    assert await catalogue.app.state.db.reservations.count_documents({}) == 0


async def test_out_of_stock_names_the_products_and_holds_nothing(
    order: RunningService, cart: RunningService, catalogue: RunningService, shopper
) -> None:
    fay = shopper()
    kb, hs = await product_id(catalogue, "KB-001"), await product_id(catalogue, "HS-003")
    await add_to_cart(cart, fay, kb, 2)
    await add_to_cart(cart, fay, hs, 5)
    await set_stock(catalogue, hs, 4)  # sold elsewhere after it went into the cart
    response = await checkout(order, fay, key="k1")
    problem = assert_problem(response, 409)
    assert problem["outOfStock"] == [{"productId": hs, "name": "Studio Headphones"}]
    assert "Studio Headphones" in problem["detail"]
    assert await stock(catalogue, kb) == 25 and await stock(catalogue, hs) == 4
    assert await stored_orders(order) == 0
    assert await cart_lines(cart, fay.user_id) == {kb: 2, hs: 5}
    # A failed checkout records nothing under its key: once stock is back, the retry succeeds.
    await set_stock(catalogue, hs, 10)
    retried = await checkout(order, fay, key="k1")
    assert retried.status_code == 201, retried.text
    assert await stock(catalogue, hs) == 5


async def test_products_gone_from_the_catalogue_are_named(
    order: RunningService, cart: RunningService, catalogue: RunningService, shopper
) -> None:
    gil = shopper()
    kb = await product_id(catalogue, "KB-001")
    await add_to_cart(cart, gil, kb, 1)
    await catalogue.app.state.db.products.delete_one({"_id": ObjectId(kb)})
    problem = assert_problem(await checkout(order, gil), 409)
    assert problem["unavailableProducts"] == [kb]
    assert await stored_orders(order) == 0


async def test_concurrent_checkouts_of_the_last_unit(
    order: RunningService, cart: RunningService, catalogue: RunningService, shopper
) -> None:
    sp = await product_id(catalogue, "SP-004")
    await set_stock(catalogue, sp, 1)
    buyers = [shopper() for _ in range(6)]
    for buyer in buyers:
        await add_to_cart(cart, buyer, sp, 1)
    responses = await asyncio.gather(*(checkout(order, buyer) for buyer in buyers))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 5, [r.text for r in responses]
    assert await stock(catalogue, sp) == 0
    assert await stored_orders(order) == 1
    for buyer, response in zip(buyers, responses, strict=True):
        if response.status_code == 409:
            assert response.json()["outOfStock"][0]["productId"] == sp
            assert await cart_lines(cart, buyer.user_id) == {sp: 1}
        else:
            assert await cart_lines(cart, buyer.user_id) == {}


async def test_what_is_added_during_a_checkout_is_ordered_or_stays_in_the_cart(
    order: RunningService, cart: RunningService, catalogue: RunningService, shopper
) -> None:
    """Whatever the interleaving, every unit added ends up in the order or still in the cart,
    never in both and never lost."""
    hal = shopper()
    kb, ms = await product_id(catalogue, "KB-001"), await product_id(catalogue, "MS-002")
    await add_to_cart(cart, hal, kb, 2)

    async def add(pid: str) -> None:
        await add_to_cart(cart, hal, pid, 1)

    placed, *_ = await asyncio.gather(checkout(order, hal), add(kb), add(ms), add(kb))
    assert placed.status_code == 201, placed.text
    ordered = {line["productId"]: line["quantity"] for line in placed.json()["lines"]}
    left = await cart_lines(cart, hal.user_id)
    assert ordered.get(kb, 0) + left.get(kb, 0) == 4
    assert ordered.get(ms, 0) + left.get(ms, 0) == 1
    assert await stock(catalogue, kb) == 25 - ordered[kb]


async def test_products_in_two_currencies_cannot_be_ordered_together(
    order: RunningService, cart: RunningService, catalogue: RunningService, shopper
) -> None:
    ivy = shopper()
    kb, ms = await product_id(catalogue, "KB-001"), await product_id(catalogue, "MS-002")
    await add_to_cart(cart, ivy, kb, 1)
    await add_to_cart(cart, ivy, ms, 1)
    await catalogue.app.state.db.products.update_one(
        {"_id": ObjectId(ms)}, {"$set": {"currency": "USD"}}
    )
    view = await cart_view_once(cart, ivy, lambda v: v["currency"] is None)
    assert view["totalCents"] is None and view["currency"] is None
    assert [line["currency"] for line in view["lines"]] == ["EUR", "USD"]
    assert "currency" in assert_problem(await checkout(order, ivy), 409)["detail"]
    assert await stock(catalogue, kb) == 25 and await stock(catalogue, ms) == 60
    assert await stored_orders(order) == 0
