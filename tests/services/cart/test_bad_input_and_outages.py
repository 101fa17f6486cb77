"""Bad input gets a 4xx problem and writes nothing; a product service that is down gets a quick
503 with Retry-After and writes nothing."""

from __future__ import annotations

import contextlib
import time

import pytest

from services.product.catalogue import load_catalogue, read_catalogue
from tests.conftest import RunningService
from tests.infra.servers import free_port_url
from tests.services.conftest import FAST_RETRIES, add_to_cart, assert_problem, product_id

KB = "a" * 24


@pytest.mark.parametrize(
    ("body", "expect_in_detail"),
    [
        pytest.param(b'{"productId": "' + KB.encode() + b'", ', "not valid JSON", id="malformed"),
        pytest.param(b'{"productId": 42, "quantity": 1}', "productId", id="wrong-type"),
        pytest.param(
            b'{"productId": "' + KB.encode() + b'", "quantity": "two"}', "quantity", id="str-qty"
        ),
        pytest.param(b'{"quantity": 1}', "productId", id="missing-field"),
        pytest.param(b'{"productId": {"$gt": ""}, "quantity": 1}', "productId", id="injection"),
        pytest.param(
            b'{"productId": "' + KB.encode() + b'", "quantity": {"$gt": 0}}', "quantity", id="inj2"
        ),
        pytest.param(b'{"productId": "../../x", "quantity": 1}', "productId", id="path-like"),
        pytest.param(
            b'{"productId": "' + KB.encode() + b'", "quantity": 1, "userId": "someone"}',
            "userId",
            id="unknown-field",
        ),
        pytest.param(b"[]", "", id="array"),
        pytest.param(b"", "", id="empty"),
    ],
)
async def test_add_rejects_bad_bodies(
    cart: RunningService, shopper, body, expect_in_detail
) -> None:
    response = await cart.client.post(
        "/api/v1/cart/items",
        content=body,
        headers={**shopper().headers, "Content-Type": "application/json"},
    )
    problem = assert_problem(response, 400)
    assert expect_in_detail in problem["detail"]
    assert await cart.app.state.db.cart_lines.count_documents({}) == 0


async def test_change_rejects_bad_bodies(cart: RunningService, catalogue, shopper) -> None:
    ada = shopper()
    kb = await product_id(catalogue, "KB-001")
    await add_to_cart(cart, ada, kb, 2)
    for body in ({}, {"quantity": None}, {"quantity": 1.5}, {"quantity": 1, "price": 0}):
        response = await cart.client.patch(
            f"/api/v1/cart/items/{kb}", json=body, headers=ada.headers
        )
        assert_problem(response, 400)
    long_id = await cart.client.patch(
        f"/api/v1/cart/items/{'x' * 65}", json={"quantity": 1}, headers=ada.headers
    )
    assert_problem(long_id, 400)
    line = await cart.app.state.db.cart_lines.find_one({"userId": ada.user_id})
    assert line["quantity"] == 2


async def test_oversized_body_is_413(cart: RunningService, shopper) -> None:
    body = {"productId": KB, "quantity": 1, "padding": "x" * 200_000}
    response = await cart.client.post("/api/v1/cart/items", json=body, headers=shopper().headers)
    assert_problem(response, 413)
    assert await cart.app.state.db.cart_lines.count_documents({}) == 0


async def test_product_down_is_a_quick_503_and_nothing_is_written(
    catalogue: RunningService, start_service, shopper
) -> None:
    bea = shopper()
    kb = await product_id(catalogue, "KB-001")
    async with start_service("cart", product_url=free_port_url(), **FAST_RETRIES) as cart:
        await cart.app.state.db.cart_lines.insert_one(
            {"userId": bea.user_id, "productId": kb, "quantity": 1}
        )
        started = time.monotonic()
        add = await cart.client.post(
            "/api/v1/cart/items", json={"productId": kb, "quantity": 2}, headers=bea.headers
        )
        assert time.monotonic() - started < 2
        problem = assert_problem(add, 503)
        assert add.headers["retry-after"] == "2"
        assert problem["dependency"] == "product"
        view = await cart.client.get("/api/v1/cart", headers=bea.headers)
        assert_problem(view, 503)
        patch = await cart.client.patch(
            f"/api/v1/cart/items/{kb}", json={"quantity": 5}, headers=bea.headers
        )
        assert_problem(patch, 503)
        line = await cart.app.state.db.cart_lines.find_one({"userId": bea.user_id})
        assert line["quantity"] == 1
        # Removing needs no product data, so it still works.
        removed = await cart.client.delete(f"/api/v1/cart/items/{kb}", headers=bea.headers)
        assert removed.status_code == 204


async def test_product_stopped_under_a_running_cart(start_service, shopper) -> None:
    """Product goes away while the cart runs: 503 and nothing written, then normal once back."""
    cat = shopper()
    async with contextlib.AsyncExitStack() as product_running:
        product = await product_running.enter_async_context(start_service("product"))
        await load_catalogue(product.app.state.db, read_catalogue())
        kb = await product_id(product, "KB-001")
        async with start_service("cart", product_url=product.url, **FAST_RETRIES) as cart:
            await add_to_cart(cart, cat, kb, 1)
            await product_running.aclose()
            down = await cart.client.post(
                "/api/v1/cart/items", json={"productId": kb, "quantity": 1}, headers=cat.headers
            )
            assert_problem(down, 503)
            assert down.headers["retry-after"] == "2"
            line = await cart.app.state.db.cart_lines.find_one({"userId": cat.user_id})
            assert line["quantity"] == 1
