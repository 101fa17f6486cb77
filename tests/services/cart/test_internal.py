"""The cart's internal routes: order reads a cart and takes out what it ordered; auth's cascade
deletes a user's cart, after which that user's tokens are refused."""

from __future__ import annotations

import asyncio

from services.cart.repository import DELETED, CartRepository
from tests.conftest import RunningService
from tests.services.conftest import CART_SETTLE, add_to_cart, assert_problem, product_id


async def lines(cart: RunningService, user_id: str) -> dict[str, int]:
    """The user's cart lines in the database (a deletion marker is not a line)."""
    docs = await cart.app.state.db.cart_lines.find({"userId": user_id}).to_list()
    return {doc["productId"]: doc["quantity"] for doc in docs if doc["productId"] != DELETED}


async def test_order_reads_a_cart(cart, catalogue, shopper, internal) -> None:
    ada = shopper()
    kb, ms = await product_id(catalogue, "KB-001"), await product_id(catalogue, "MS-002")
    await add_to_cart(cart, ada, kb, 2)
    await add_to_cart(cart, ada, ms, 1)
    response = await cart.client.get(f"/internal/v1/users/{ada.user_id}/cart", headers=internal)
    assert response.status_code == 200
    assert response.json() == {
        "userId": ada.user_id,
        "lines": [{"productId": kb, "quantity": 2}, {"productId": ms, "quantity": 1}],
    }
    unknown = await cart.client.get("/internal/v1/users/nobody/cart", headers=internal)
    assert unknown.json() == {"userId": "nobody", "lines": []}


async def test_a_removal_takes_out_exactly_what_was_ordered_once(
    cart, catalogue, shopper, internal
) -> None:
    bea = shopper()
    kb, ms, hs = [await product_id(catalogue, s) for s in ("KB-001", "MS-002", "HS-003")]
    await add_to_cart(cart, bea, kb, 5)  # 2 more were added while the order of 3 was placed
    await add_to_cart(cart, bea, ms, 1)
    await add_to_cart(cart, bea, hs, 1)  # added during checkout: not part of the order
    removal = {
        "removalId": "order-1",
        "lines": [
            {"productId": kb, "quantity": 3},
            {"productId": ms, "quantity": 1},
            {"productId": "0" * 24, "quantity": 1},  # no longer in the cart: nothing to do
        ],
    }
    path = f"/internal/v1/users/{bea.user_id}/cart/removals"
    for _ in range(3):  # a retried removal changes nothing more
        response = await cart.client.post(path, json=removal, headers=internal)
        assert response.status_code == 204, response.text
        assert await lines(cart, bea.user_id) == {kb: 2, hs: 1}
    # A later order of the rest takes it.
    rest = {"removalId": "order-2", "lines": [{"productId": kb, "quantity": 2}]}
    assert (await cart.client.post(path, json=rest, headers=internal)).status_code == 204
    assert await lines(cart, bea.user_id) == {hs: 1}


async def test_bad_removals_are_refused(cart, catalogue, shopper, internal) -> None:
    cat = shopper()
    kb = await product_id(catalogue, "KB-001")
    await add_to_cart(cart, cat, kb, 2)
    path = f"/internal/v1/users/{cat.user_id}/cart/removals"
    for body in (
        {"removalId": "r", "lines": []},
        {"removalId": "r", "lines": [{"productId": kb, "quantity": 0}]},
        {"removalId": "r", "lines": [{"productId": {"$gt": ""}, "quantity": 1}]},
        {"removalId": "", "lines": [{"productId": kb, "quantity": 1}]},
        {"lines": [{"productId": kb, "quantity": 1}]},
    ):
        assert_problem(await cart.client.post(path, json=body, headers=internal), 400)
    assert await lines(cart, cat.user_id) == {kb: 2}


async def test_internal_routes_refuse_a_missing_or_wrong_key(cart, catalogue, shopper) -> None:
    dan = shopper()
    kb = await product_id(catalogue, "KB-001")
    await add_to_cart(cart, dan, kb, 1)
    admin = shopper(role="admin")
    base = f"/internal/v1/users/{dan.user_id}/cart"
    removal = {"removalId": "x", "lines": [{"productId": kb, "quantity": 1}]}
    for headers in ({}, {"X-Internal-Api-Key": "wrong"}, admin.headers, dan.headers):
        assert_problem(await cart.client.get(base, headers=headers), 401)
        assert_problem(
            await cart.client.post(f"{base}/removals", json=removal, headers=headers), 401
        )
        assert_problem(await cart.client.delete(base, headers=headers), 401)
    assert await lines(cart, dan.user_id) == {kb: 1}


async def test_deleting_a_users_cart_is_idempotent_and_ends_their_tokens(
    cart, catalogue, shopper, internal
) -> None:
    eve, other = shopper(), shopper()
    kb = await product_id(catalogue, "KB-001")
    await add_to_cart(cart, eve, kb, 2)
    await add_to_cart(cart, other, kb, 1)
    path = f"/internal/v1/users/{eve.user_id}/cart"
    # Deleted at once, but not settled until deletion_settle_seconds (1 s here) have passed:
    # 202 asks the cascade to call again; then 204, and again 204 (idempotent).
    first = await cart.client.delete(path, headers=internal)
    assert first.status_code == 202
    assert await lines(cart, eve.user_id) == {}
    await asyncio.sleep(CART_SETTLE)
    for _ in range(2):
        deleted = await cart.client.delete(path, headers=internal)
        assert deleted.status_code == 204
    assert await lines(cart, eve.user_id) == {}
    never_had_one = await cart.client.delete("/internal/v1/users/unknown/cart", headers=internal)
    assert never_had_one.status_code == 202
    # From now on Eve's (unexpired) token is refused, on every route, and nothing is written.
    assert_problem(await cart.client.get("/api/v1/cart", headers=eve.headers), 401)
    add = await cart.client.post(
        "/api/v1/cart/items", json={"productId": kb, "quantity": 1}, headers=eve.headers
    )
    assert_problem(add, 401)
    assert_problem(await cart.client.get("/api/cart/get-cart", headers=eve.headers), 401)
    assert await lines(cart, eve.user_id) == {}
    # Other users are untouched.
    assert await lines(cart, other.user_id) == {kb: 1}
    assert (await cart.client.get("/api/v1/cart", headers=other.headers)).status_code == 200


async def test_a_line_written_after_the_first_clear_goes_with_the_settling_call(
    cart, catalogue, shopper, internal
) -> None:
    """A write on another replica that read the cart before the deletion marker existed may
    land after the first clear (no lock spans replicas); the cascade's call after the settle
    time deletes it."""
    eve = shopper()
    kb = await product_id(catalogue, "KB-001")
    await add_to_cart(cart, eve, kb, 1)
    path = f"/internal/v1/users/{eve.user_id}/cart"
    assert (await cart.client.delete(path, headers=internal)).status_code == 202
    # The late write, as that replica makes it: its insert after the clear.
    await CartRepository(cart.app.state.db).insert(eve.user_id, kb, 2, 8999)
    assert await lines(cart, eve.user_id) == {kb: 2}
    await asyncio.sleep(CART_SETTLE)
    assert (await cart.client.delete(path, headers=internal)).status_code == 204
    assert await lines(cart, eve.user_id) == {}
    # The marker itself is no line: the internal read shows an empty cart, not a product.
    contents = await cart.client.get(path, headers=internal)
    assert contents.json()["lines"] == []
