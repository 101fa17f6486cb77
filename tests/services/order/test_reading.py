"""Listing and reading orders: mine, newest first, paged; admins may read anyone's."""

from __future__ import annotations

from tests.conftest import RunningService
from tests.services.conftest import assert_problem, product_id


async def order_items(order: RunningService, who, pid: str, quantity: int) -> dict:
    response = await order.client.post(
        "/api/order",
        json={"items": [{"productId": pid, "quantity": quantity}]},
        headers=who.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_my_orders_newest_first_and_paged(
    order: RunningService, catalogue: RunningService, shopper
) -> None:
    ada, bea = shopper(), shopper()
    kb = await product_id(catalogue, "KB-001")
    placed = [await order_items(order, ada, kb, n) for n in (1, 2, 3)]
    await order_items(order, bea, kb, 1)
    first = await order.client.get("/api/v1/orders", params={"pageSize": 2}, headers=ada.headers)
    body = first.json()
    assert body["total"] == 3 and body["page"] == 1 and body["pageSize"] == 2
    assert [o["id"] for o in body["items"]] == [placed[2]["id"], placed[1]["id"]]
    second = await order.client.get(
        "/api/v1/orders", params={"pageSize": 2, "page": 2}, headers=ada.headers
    )
    assert [o["id"] for o in second.json()["items"]] == [placed[0]["id"]]
    for params in ({"pageSize": 0}, {"pageSize": 501}, {"page": 0}, {"page": "x"}):
        assert_problem(
            await order.client.get("/api/v1/orders", params=params, headers=ada.headers), 400
        )
    too_big = await order.client.get(
        "/api/v1/orders", params={"pageSize": 101}, headers=ada.headers
    )
    assert "pageSize" in assert_problem(too_big, 400)["detail"]


async def test_one_order_is_mine_or_an_admins(
    order: RunningService, catalogue: RunningService, shopper
) -> None:
    cat, dan, admin = shopper(), shopper(), shopper(role="admin")
    kb = await product_id(catalogue, "KB-001")
    placed = await order_items(order, cat, kb, 1)
    path = f"/api/v1/orders/{placed['id']}"
    assert (await order.client.get(path, headers=cat.headers)).json() == placed
    assert_problem(await order.client.get(path, headers=dan.headers), 404)
    assert (await order.client.get(path, headers=admin.headers)).json() == placed
    for unknown in ("0" * 24, "not-an-id", "x" * 64):
        assert_problem(
            await order.client.get(f"/api/v1/orders/{unknown}", headers=admin.headers), 404
        )
    assert_problem(await order.client.get(path), 401)


async def test_admins_list_anyones_orders_and_customers_only_their_own(
    order: RunningService, catalogue: RunningService, shopper
) -> None:
    eve, fay, admin = shopper(), shopper(), shopper(role="admin")
    kb = await product_id(catalogue, "KB-001")
    placed = await order_items(order, eve, kb, 1)
    seen = await order.client.get(
        "/api/v1/orders", params={"userId": eve.user_id}, headers=admin.headers
    )
    assert [o["id"] for o in seen.json()["items"]] == [placed["id"]]
    refused = await order.client.get(
        "/api/v1/orders", params={"userId": eve.user_id}, headers=fay.headers
    )
    assert_problem(refused, 403)
    assert (await order.client.get("/api/v1/orders", headers=fay.headers)).json()["items"] == []
    assert_problem(await order.client.get("/api/v1/orders"), 401)
