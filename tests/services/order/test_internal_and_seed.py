"""The cascade's internal route, and seed 002's order routes with their auth rules."""

from __future__ import annotations

from tests.conftest import RunningService
from tests.services.conftest import add_to_cart, assert_problem, product_id, stock, stored_orders
from tests.services.order.test_reading import order_items


async def test_deleting_a_users_orders_is_idempotent_and_ends_their_tokens(
    order: RunningService, catalogue: RunningService, shopper, internal
) -> None:
    ada, bea = shopper(), shopper()
    kb = await product_id(catalogue, "KB-001")
    await order_items(order, ada, kb, 1)
    await order_items(order, ada, kb, 2)
    kept = await order_items(order, bea, kb, 1)
    for _ in range(2):
        response = await order.client.delete(
            f"/internal/v1/users/{ada.user_id}/orders", headers=internal
        )
        assert response.status_code == 204
    assert await stored_orders(order, userId=ada.user_id) == 0
    unknown = await order.client.delete("/internal/v1/users/nobody/orders", headers=internal)
    assert unknown.status_code == 204
    assert_problem(await order.client.get("/api/v1/orders", headers=ada.headers), 401)
    refused = await order.client.post(
        "/api/order", json={"items": [{"productId": kb, "quantity": 1}]}, headers=ada.headers
    )
    assert_problem(refused, 401)
    assert_problem(await order.client.post("/api/v1/orders", headers=ada.headers), 401)
    assert await stored_orders(order, userId=ada.user_id) == 0
    assert await stock(catalogue, kb) == 25 - 4
    mine = (await order.client.get("/api/v1/orders", headers=bea.headers)).json()
    assert [o["id"] for o in mine["items"]] == [kept["id"]]


async def test_internal_delete_refuses_a_missing_or_wrong_key(
    order: RunningService, catalogue: RunningService, shopper
) -> None:
    cat = shopper()
    kb = await product_id(catalogue, "KB-001")
    await order_items(order, cat, kb, 1)
    path = f"/internal/v1/users/{cat.user_id}/orders"
    for headers in (
        {},
        {"X-Internal-Api-Key": "wrong"},
        shopper(role="admin").headers,
        cat.headers,
    ):
        assert_problem(await order.client.delete(path, headers=headers), 401)
    assert await stored_orders(order, userId=cat.user_id) == 1


async def test_seed_create_order_from_the_cart_or_from_items(
    order: RunningService, cart: RunningService, catalogue: RunningService, shopper
) -> None:
    dan = shopper()
    kb, ms = await product_id(catalogue, "KB-001"), await product_id(catalogue, "MS-002")
    await add_to_cart(cart, dan, kb, 2)
    from_cart = await order.client.post("/api/order", json={}, headers=dan.headers)
    assert from_cart.status_code == 201
    assert [(x["productId"], x["quantity"]) for x in from_cart.json()["lines"]] == [(kb, 2)]
    assert (await cart.client.get("/api/v1/cart", headers=dan.headers)).json()["lines"] == []
    empty = await order.client.post("/api/order", headers=dan.headers)  # no body at all
    assert "empty" in assert_problem(empty, 409)["detail"]
    await add_to_cart(cart, dan, kb, 1)
    direct = await order.client.post(
        "/api/order",
        json={
            "userId": dan.user_id,
            "items": [{"productId": ms, "quantity": 1}, {"productId": ms, "quantity": 2}],
        },
        headers=dan.headers,
    )
    assert direct.status_code == 201
    assert [(x["productId"], x["quantity"]) for x in direct.json()["lines"]] == [(ms, 3)]
    # Ordering given items leaves the cart alone.
    view = (await cart.client.get("/api/v1/cart", headers=dan.headers)).json()
    assert [(x["productId"], x["quantity"]) for x in view["lines"]] == [(kb, 1)]
    keyed = {**dan.headers, "Idempotency-Key": "seed-1"}
    body = {"items": [{"productId": ms, "quantity": 1}]}
    first = await order.client.post("/api/order", json=body, headers=keyed)
    again = await order.client.post("/api/order", json=body, headers=keyed)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    for_someone_else = await order.client.post(
        "/api/order", json={"userId": shopper().user_id, **body}, headers=dan.headers
    )
    assert_problem(for_someone_else, 403)
    assert_problem(await order.client.post("/api/order", json=body), 401)
    assert await stored_orders(order, userId=dan.user_id) == 3


async def test_seed_get_orders_of_a_user(
    order: RunningService, catalogue: RunningService, shopper
) -> None:
    eve, fay, admin = shopper(), shopper(), shopper(role="admin")
    kb = await product_id(catalogue, "KB-001")
    placed = await order_items(order, eve, kb, 1)
    own = await order.client.get(f"/api/order/{eve.user_id}", headers=eve.headers)
    assert own.status_code == 200 and [o["id"] for o in own.json()["items"]] == [placed["id"]]
    assert_problem(await order.client.get(f"/api/order/{eve.user_id}", headers=fay.headers), 403)
    by_admin = await order.client.get(f"/api/order/{eve.user_id}", headers=admin.headers)
    assert by_admin.json()["total"] == 1
    assert_problem(await order.client.get(f"/api/order/{eve.user_id}"), 401)


async def test_seed_delete_orders_of_a_user(
    order: RunningService, catalogue: RunningService, shopper, internal
) -> None:
    gil, hal, admin = shopper(), shopper(), shopper(role="admin")
    kb = await product_id(catalogue, "KB-001")
    await order_items(order, gil, kb, 1)
    await order_items(order, hal, kb, 1)
    assert_problem(await order.client.delete(f"/api/order/{gil.user_id}"), 401)
    assert_problem(await order.client.delete(f"/api/order/{gil.user_id}", headers=gil.headers), 403)
    wrong_key = await order.client.delete(
        f"/api/order/{gil.user_id}", headers={"X-Internal-Api-Key": "wrong"}
    )
    assert_problem(wrong_key, 401)
    # An admin deletes the orders; the user stays a user.
    by_admin = await order.client.delete(f"/api/order/{gil.user_id}", headers=admin.headers)
    assert by_admin.status_code == 204
    assert await stored_orders(order, userId=gil.user_id) == 0
    assert (await order.client.get("/api/v1/orders", headers=gil.headers)).status_code == 200
    # With the internal key it is seed 002's cascade: the user is gone, so are their tokens.
    for _ in range(2):
        by_service = await order.client.delete(f"/api/order/{hal.user_id}", headers=internal)
        assert by_service.status_code == 204
    assert await stored_orders(order, userId=hal.user_id) == 0
    assert_problem(await order.client.get("/api/v1/orders", headers=hal.headers), 401)


async def test_openapi_lists_the_operations(order: RunningService) -> None:
    schema = (await order.client.get("/schema/openapi.json")).json()
    operation_ids = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert {
        "placeOrder",
        "listOrders",
        "getOrder",
        "internalDeleteUserOrders",
        "seedCreateOrder",
        "seedGetUserOrders",
        "seedDeleteUserOrders",
    } <= operation_ids
