"""Seed 000's cart routes answer with the clean API's behaviour and auth rules."""

from __future__ import annotations

from tests.conftest import RunningService
from tests.services.conftest import add_to_cart, assert_problem, product_id


async def test_add_to_cart_and_get_cart(cart: RunningService, catalogue, shopper) -> None:
    ada = shopper()
    kb = await product_id(catalogue, "KB-001")
    added = await cart.client.post(
        "/api/cart/add-to-cart", json={"productId": kb}, headers=ada.headers
    )
    assert added.status_code == 200
    assert added.json()["lines"][0]["quantity"] == 1  # the seed sends only the product id
    again = await cart.client.post(
        "/api/cart/add-to-cart", json={"productId": kb, "quantity": 2}, headers=ada.headers
    )
    assert again.json()["lines"][0]["quantity"] == 3
    for path in ("/api/cart/get-cart/", "/api/cart/get-cart"):
        view = await cart.client.get(path, headers=ada.headers)
        assert view.status_code == 200 and view.json()["totalCents"] == 3 * 8999
        assert_problem(await cart.client.get(path), 401)
    anonymous = await cart.client.post("/api/cart/add-to-cart", json={"productId": kb})
    assert_problem(anonymous, 401)
    bad = await cart.client.post(
        "/api/cart/add-to-cart", json={"productId": {"$gt": ""}}, headers=ada.headers
    )
    assert_problem(bad, 400)


async def test_edit_quantity_with_the_token_in_the_path(
    cart: RunningService, catalogue, shopper
) -> None:
    bea = shopper()
    kb = await product_id(catalogue, "KB-001")
    await add_to_cart(cart, bea, kb, 1)
    edited = await cart.client.get(
        f"/api/cart/edit-quantity/{bea.token}", params={"productId": kb, "quantity": 4}
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["lines"][0]["quantity"] == 4
    no_product = await cart.client.get(
        f"/api/cart/edit-quantity/{bea.token}", params={"quantity": 2}
    )
    assert "productId" in assert_problem(no_product, 400)["detail"]
    forged = bea.token[:-4] + ("AAAA" if not bea.token.endswith("AAAA") else "BBBB")
    bad_token = await cart.client.get(
        f"/api/cart/edit-quantity/{forged}", params={"productId": kb, "quantity": 2}
    )
    assert_problem(bad_token, 401)


async def test_edit_quantity_with_the_product_in_the_path(
    cart: RunningService, catalogue, shopper
) -> None:
    cat = shopper()
    kb, ms = await product_id(catalogue, "KB-001"), await product_id(catalogue, "MS-002")
    await add_to_cart(cart, cat, kb, 1)
    edited = await cart.client.get(
        f"/api/cart/edit-quantity/{kb}", params={"quantity": 7}, headers=cat.headers
    )
    assert edited.status_code == 200 and edited.json()["lines"][0]["quantity"] == 7
    assert_problem(await cart.client.get(f"/api/cart/edit-quantity/{kb}?quantity=2"), 401)
    mismatch = await cart.client.get(
        f"/api/cart/edit-quantity/{kb}",
        params={"quantity": 2, "productId": ms},
        headers=cat.headers,
    )
    assert_problem(mismatch, 400)
    for quantity in ("0", "100", "two"):
        out_of_bounds = await cart.client.get(
            f"/api/cart/edit-quantity/{kb}", params={"quantity": quantity}, headers=cat.headers
        )
        assert_problem(out_of_bounds, 400)
    not_in_cart = await cart.client.get(
        f"/api/cart/edit-quantity/{ms}", params={"quantity": 1}, headers=cat.headers
    )
    assert_problem(not_in_cart, 404)
    line = await cart.app.state.db.cart_lines.find_one({"userId": cat.user_id})
    assert line["quantity"] == 7


async def test_delete_cart_removes_the_line_of_that_product(
    cart: RunningService, catalogue, shopper
) -> None:
    dan = shopper()
    kb, ms = await product_id(catalogue, "KB-001"), await product_id(catalogue, "MS-002")
    await add_to_cart(cart, dan, kb, 1)
    await add_to_cart(cart, dan, ms, 1)
    assert_problem(await cart.client.delete(f"/api/cart/delete-cart/{kb}"), 401)
    deleted = await cart.client.delete(f"/api/cart/delete-cart/{kb}", headers=dan.headers)
    assert deleted.status_code == 204
    assert_problem(
        await cart.client.delete(f"/api/cart/delete-cart/{kb}", headers=dan.headers), 404
    )
    view = (await cart.client.get("/api/cart/get-cart", headers=dan.headers)).json()
    assert [line["productId"] for line in view["lines"]] == [ms]
