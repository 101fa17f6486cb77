"""The cart's clean API over HTTP: add, view with current prices, change, remove, clear."""

from __future__ import annotations

import asyncio

from bson import ObjectId

from tests.conftest import RunningService
from tests.services.conftest import (
    add_to_cart,
    assert_problem,
    cart_view_once,
    product_id,
    set_stock,
)


async def test_add_view_change_remove(cart: RunningService, catalogue: RunningService, shopper):
    ada = shopper()
    kb, ms = await product_id(catalogue, "KB-001"), await product_id(catalogue, "MS-002")
    await add_to_cart(cart, ada, kb, 2)
    after = await add_to_cart(cart, ada, ms)
    assert after["userId"] == ada.user_id
    assert [(line["productId"], line["quantity"]) for line in after["lines"]] == [(kb, 2), (ms, 1)]
    keyboard = after["lines"][0]
    assert keyboard == {
        "productId": kb,
        "quantity": 2,
        "available": True,
        "inStock": True,
        "name": "Mechanical Keyboard",
        "unitPriceCents": 8999,
        "currency": "EUR",
        "lineTotalCents": 17998,
        "addedUnitPriceCents": 8999,
    }
    assert after["itemCount"] == 3
    assert after["totalCents"] == 2 * 8999 + 2999 and after["currency"] == "EUR"

    changed = await cart.client.patch(
        f"/api/v1/cart/items/{kb}", json={"quantity": 5}, headers=ada.headers
    )
    assert changed.status_code == 200
    assert changed.json()["lines"][0]["quantity"] == 5
    assert changed.json()["totalCents"] == 5 * 8999 + 2999

    removed = await cart.client.delete(f"/api/v1/cart/items/{ms}", headers=ada.headers)
    assert removed.status_code == 204
    again = await cart.client.delete(f"/api/v1/cart/items/{ms}", headers=ada.headers)
    assert_problem(again, 404)
    view = (await cart.client.get("/api/v1/cart", headers=ada.headers)).json()
    assert [line["productId"] for line in view["lines"]] == [kb]

    cleared = await cart.client.delete("/api/v1/cart", headers=ada.headers)
    assert cleared.status_code == 204
    empty = (await cart.client.get("/api/v1/cart", headers=ada.headers)).json()
    assert empty == {
        "userId": ada.user_id,
        "lines": [],
        "itemCount": 0,
        "totalCents": 0,
        "currency": None,
    }


async def test_a_second_add_raises_the_quantity_of_the_one_line(
    cart: RunningService, catalogue: RunningService, shopper
) -> None:
    bea = shopper()
    kb = await product_id(catalogue, "KB-001")
    await add_to_cart(cart, bea, kb, 2)
    view = await add_to_cart(cart, bea, kb, 3)
    assert [(line["productId"], line["quantity"]) for line in view["lines"]] == [(kb, 5)]
    assert await cart.app.state.db.cart_lines.count_documents({"userId": bea.user_id}) == 1


async def test_concurrent_adds_of_one_product_end_with_the_exact_quantity(
    cart: RunningService, catalogue: RunningService, shopper
) -> None:
    cat = shopper()
    kb = await product_id(catalogue, "KB-001")
    responses = await asyncio.gather(
        *(
            cart.client.post(
                "/api/v1/cart/items", json={"productId": kb, "quantity": 1}, headers=cat.headers
            )
            for _ in range(20)
        )
    )
    assert [r.status_code for r in responses] == [200] * 20
    lines = await cart.app.state.db.cart_lines.find({"userId": cat.user_id}).to_list()
    assert len(lines) == 1 and lines[0]["quantity"] == 20


async def test_each_user_sees_only_their_own_cart(
    cart: RunningService, catalogue: RunningService, shopper
) -> None:
    dan, eve = shopper(), shopper()
    kb = await product_id(catalogue, "KB-001")
    await add_to_cart(cart, dan, kb, 4)
    eves = (await cart.client.get("/api/v1/cart", headers=eve.headers)).json()
    assert eves["lines"] == []
    # Eve cannot change or remove Dan's line: it is not in her cart.
    patch = await cart.client.patch(
        f"/api/v1/cart/items/{kb}", json={"quantity": 1}, headers=eve.headers
    )
    assert_problem(patch, 404)
    assert_problem(await cart.client.delete(f"/api/v1/cart/items/{kb}", headers=eve.headers), 404)
    dans = (await cart.client.get("/api/v1/cart", headers=dan.headers)).json()
    assert dans["lines"][0]["quantity"] == 4


async def test_unknown_product_is_404_and_nothing_is_written(
    cart: RunningService, catalogue: RunningService, shopper
) -> None:
    fay = shopper()
    response = await cart.client.post(
        "/api/v1/cart/items", json={"productId": "0" * 24, "quantity": 1}, headers=fay.headers
    )
    assert "0" * 24 in assert_problem(response, 404)["detail"]
    assert await cart.app.state.db.cart_lines.count_documents({}) == 0


async def test_stock_is_checked_on_add_and_on_change(
    cart: RunningService, catalogue: RunningService, shopper
) -> None:
    gil = shopper()
    sp = await product_id(catalogue, "SP-004")  # 8 in stock
    await add_to_cart(cart, gil, sp, 6)
    more = await cart.client.post(
        "/api/v1/cart/items", json={"productId": sp, "quantity": 3}, headers=gil.headers
    )
    problem = assert_problem(more, 409)
    assert problem["outOfStock"] == [
        {"productId": sp, "name": "Bookshelf Speakers", "available": 8}
    ]
    patch = await cart.client.patch(
        f"/api/v1/cart/items/{sp}", json={"quantity": 9}, headers=gil.headers
    )
    assert_problem(patch, 409)
    await set_stock(catalogue, sp, 0)
    sold_out = await cart.client.post(
        "/api/v1/cart/items", json={"productId": sp, "quantity": 1}, headers=gil.headers
    )
    assert_problem(sold_out, 409)
    line = await cart.app.state.db.cart_lines.find_one({"userId": gil.user_id})
    assert line["quantity"] == 6
    view = (await cart.client.get("/api/v1/cart", headers=gil.headers)).json()
    assert view["lines"][0]["inStock"] is False


async def test_quantity_bounds(cart: RunningService, catalogue: RunningService, shopper) -> None:
    hal = shopper()
    cb = await product_id(catalogue, "CB-007")  # 200 in stock
    for quantity in (0, -1, 100, 10**12):
        response = await cart.client.post(
            "/api/v1/cart/items", json={"productId": cb, "quantity": quantity}, headers=hal.headers
        )
        assert "quantity" in assert_problem(response, 400)["detail"]
    await add_to_cart(cart, hal, cb, 60)
    over = await cart.client.post(
        "/api/v1/cart/items", json={"productId": cb, "quantity": 40}, headers=hal.headers
    )
    assert "99" in assert_problem(over, 409)["detail"]
    for quantity in (0, 100):
        patch = await cart.client.patch(
            f"/api/v1/cart/items/{cb}", json={"quantity": quantity}, headers=hal.headers
        )
        assert_problem(patch, 400)
    top = await cart.client.patch(
        f"/api/v1/cart/items/{cb}", json={"quantity": 99}, headers=hal.headers
    )
    assert top.status_code == 200 and top.json()["lines"][0]["quantity"] == 99


async def test_a_cart_holds_at_most_fifty_products(
    cart: RunningService, catalogue: RunningService, shopper
) -> None:
    ivy = shopper()
    await cart.app.state.db.cart_lines.insert_many(
        [{"userId": ivy.user_id, "productId": str(ObjectId()), "quantity": 1} for _ in range(50)]
    )
    kb = await product_id(catalogue, "KB-001")
    response = await cart.client.post(
        "/api/v1/cart/items", json={"productId": kb, "quantity": 1}, headers=ivy.headers
    )
    assert "50" in assert_problem(response, 409)["detail"]
    assert await cart.app.state.db.cart_lines.count_documents({"userId": ivy.user_id}) == 50


async def test_the_cart_shows_current_prices_and_products_gone_from_the_catalogue(
    cart: RunningService, catalogue: RunningService, shopper
) -> None:
    jay = shopper()
    kb, ms = await product_id(catalogue, "KB-001"), await product_id(catalogue, "MS-002")
    await add_to_cart(cart, jay, kb, 2)
    await add_to_cart(cart, jay, ms, 1)
    await catalogue.app.state.db.products.update_one(
        {"_id": ObjectId(kb)}, {"$set": {"priceCents": 5000}}
    )
    await catalogue.app.state.db.products.delete_one({"_id": ObjectId(ms)})
    view = await cart_view_once(cart, jay, lambda v: v["lines"][0]["unitPriceCents"] == 5000)
    keyboard, mouse = view["lines"]
    assert keyboard["unitPriceCents"] == 5000 and keyboard["lineTotalCents"] == 10000
    # The price the shopper saw when adding stays with the line, so a client can say it changed;
    # adding again is seeing the new price.
    assert keyboard["addedUnitPriceCents"] == 8999
    again = await add_to_cart(cart, jay, kb, 1)
    assert again["lines"][0]["addedUnitPriceCents"] == 5000
    await cart.client.patch(f"/api/v1/cart/items/{kb}", json={"quantity": 2}, headers=jay.headers)
    assert mouse["available"] is False and mouse["unitPriceCents"] is None
    assert view["totalCents"] == 10000 and view["itemCount"] == 3
    # A line whose product is gone can still be removed, but not changed.
    patch = await cart.client.patch(
        f"/api/v1/cart/items/{ms}", json={"quantity": 2}, headers=jay.headers
    )
    assert_problem(patch, 404)
    assert (
        await cart.client.delete(f"/api/v1/cart/items/{ms}", headers=jay.headers)
    ).status_code == 204


async def test_every_route_needs_a_valid_token(
    cart: RunningService, catalogue: RunningService, keyrings
) -> None:
    kb = await product_id(catalogue, "KB-001")
    routes = [
        ("GET", "/api/v1/cart", None),
        ("DELETE", "/api/v1/cart", None),
        ("POST", "/api/v1/cart/items", {"productId": kb, "quantity": 1}),
        ("PATCH", f"/api/v1/cart/items/{kb}", {"quantity": 1}),
        ("DELETE", f"/api/v1/cart/items/{kb}", None),
    ]
    foreign = {"Authorization": "Bearer " + "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"}
    for method, path, body in routes:
        for headers in ({}, foreign, {"Authorization": "Basic eDp5"}):
            response = await cart.client.request(method, path, json=body, headers=headers)
            assert_problem(response, 401)
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert await cart.app.state.db.cart_lines.count_documents({}) == 0


async def test_openapi_lists_the_operations(cart: RunningService) -> None:
    schema = (await cart.client.get("/schema/openapi.json")).json()
    operation_ids = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert {
        "getCart",
        "clearCart",
        "addCartItem",
        "updateCartItem",
        "removeCartItem",
        "internalGetCart",
        "internalRemoveOrderedLines",
        "internalDeleteUserCart",
        "seedAddToCart",
        "seedGetCart",
        "seedEditQuantity",
        "seedDeleteCartItem",
    } <= operation_ids


async def test_a_view_shows_product_facts_up_to_their_stated_age_and_a_change_reads_them_fresh(
    catalogue: RunningService, start_service, shopper
) -> None:
    """product_facts_max_age_seconds: views within it show what product last said (no call);
    adding or changing a line always asks product, and what it hears is what views show next."""
    kb, ms = await product_id(catalogue, "KB-001"), await product_id(catalogue, "MS-002")
    products = catalogue.app.state.db.products

    async def view(svc: RunningService, who) -> dict:
        return (await svc.client.get("/api/v1/cart", headers=who.headers)).json()

    async with start_service(
        "cart", product_url=catalogue.url, product_facts_max_age_seconds=3600
    ) as cart:
        ann = shopper()
        await add_to_cart(cart, ann, kb, 1)
        await products.update_one({"_id": ObjectId(kb)}, {"$set": {"priceCents": 7000}})
        assert (await view(cart, ann))["lines"][0]["unitPriceCents"] == 8999  # remembered
        # Another shopper's view of the same product is served from the same memory.
        bo = shopper()
        await add_to_cart(cart, bo, ms, 1)
        await products.update_one({"_id": ObjectId(ms)}, {"$set": {"stock": 0}})
        assert (await view(cart, bo))["lines"][0]["inStock"] is True
        # Adding reads fresh: the answer has the new price, and so does the next view.
        added = await add_to_cart(cart, ann, kb, 1)
        assert added["lines"][0]["unitPriceCents"] == 7000
        assert added["lines"][0]["addedUnitPriceCents"] == 7000
        assert (await view(cart, ann))["lines"][0]["unitPriceCents"] == 7000
        # A change of quantity checks the stock as it is now, never as remembered.
        changed = await cart.client.patch(
            f"/api/v1/cart/items/{ms}", json={"quantity": 2}, headers=bo.headers
        )
        assert_problem(changed, 409)
        assert (await view(cart, bo))["lines"][0]["inStock"] is False

    async with start_service(
        "cart", product_url=catalogue.url, product_facts_max_age_seconds=0
    ) as cart:
        cy = shopper()
        await add_to_cart(cart, cy, kb, 1)
        await products.update_one({"_id": ObjectId(kb)}, {"$set": {"priceCents": 6500}})
        assert (await view(cart, cy))["lines"][0]["unitPriceCents"] == 6500  # 0: always asks
