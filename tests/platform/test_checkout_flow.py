"""The whole checkout across the four services running as processes, and what happens when one
of them is down."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from services.local.platform import LocalPlatform
from tests.platform.conftest import Shopper, eventually, internal_headers


def find_product(shopper: Shopper, text: str) -> dict:
    items = shopper.call("GET", "product", "/api/v1/products", params={"q": text}).json()["items"]
    assert items, text
    return items[0]


def stock_of(shopper: Shopper, product_id: str) -> int:
    return shopper.call("GET", "product", f"/api/v1/products/{product_id}").json()["stock"]


def new_product(admin: Shopper, stock: int) -> str:
    body = {
        "sku": f"T-{uuid.uuid4().hex[:10]}",
        "name": "Limited Edition Print",
        "category": "art",
        "priceCents": 4500,
        "stock": stock,
    }
    created = admin.call("POST", "product", "/api/v1/products", json=body)
    assert created.status_code == 201, created.text
    return created.json()["id"]


def internal_cart(platform: LocalPlatform, user_id: str) -> dict:
    response = httpx.get(
        f"{platform.urls['cart']}/internal/v1/users/{user_id}/cart",
        headers=internal_headers(platform),
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_register_to_deletion(
    platform: LocalPlatform, new_shopper: Callable[[], Shopper], admin: Shopper
) -> None:
    shopper = new_shopper()
    page = shopper.call("GET", "product", "/api/v1/products", params={"pageSize": 5}).json()
    assert page["total"] >= 20
    keyboard = find_product(shopper, "keyboard")
    before = stock_of(shopper, keyboard["id"])

    added = shopper.call(
        "POST", "cart", "/api/v1/cart/items", json={"productId": keyboard["id"], "quantity": 1}
    )
    assert added.status_code == 200, added.text
    changed = shopper.call(
        "PATCH", "cart", f"/api/v1/cart/items/{keyboard['id']}", json={"quantity": 3}
    )
    assert changed.status_code == 200
    cart = shopper.call("GET", "cart", "/api/v1/cart").json()
    assert [(line["productId"], line["quantity"]) for line in cart["lines"]] == [
        (keyboard["id"], 3)
    ]
    assert cart["totalCents"] == 3 * keyboard["priceCents"]

    key = {"Idempotency-Key": uuid.uuid4().hex}
    placed = shopper.call("POST", "order", "/api/v1/orders", headers=key)
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["totalCents"] == 3 * keyboard["priceCents"]
    assert order["lines"][0]["unitPriceCents"] == keyboard["priceCents"]
    replay = shopper.call("POST", "order", "/api/v1/orders", headers=key)
    assert replay.status_code in (200, 201) and replay.json()["id"] == order["id"]

    assert shopper.call("GET", "cart", "/api/v1/cart").json()["lines"] == []
    mine = shopper.call("GET", "order", "/api/v1/orders").json()
    assert [o["id"] for o in mine["items"]] == [order["id"]]
    assert stock_of(shopper, keyboard["id"]) == before - 3

    # A price change later does not touch the order's snapshot.
    admin.call(
        "PATCH",
        "product",
        f"/api/v1/products/{keyboard['id']}",
        json={"priceCents": keyboard["priceCents"] + 100},
    )
    again = shopper.call("GET", "order", f"/api/v1/orders/{order['id']}").json()
    assert again["totalCents"] == 3 * keyboard["priceCents"]
    admin.call(
        "PATCH",
        "product",
        f"/api/v1/products/{keyboard['id']}",
        json={"priceCents": keyboard["priceCents"]},
    )

    shopper.call(
        "POST", "cart", "/api/v1/cart/items", json={"productId": keyboard["id"], "quantity": 1}
    )
    assert shopper.call("DELETE", "auth", f"/api/v1/users/{shopper.user_id}").status_code == 204

    def everything_gone() -> bool:
        orders = admin.call("GET", "order", "/api/v1/orders", params={"userId": shopper.user_id})
        return (
            orders.json()["total"] == 0 and internal_cart(platform, shopper.user_id)["lines"] == []
        )

    eventually(everything_gone)
    # The deleted user's still-unexpired token is refused everywhere.
    for service, path in (
        ("auth", "/api/v1/auth/verify"),
        ("cart", "/api/v1/cart"),
        ("order", "/api/v1/orders"),
    ):
        assert shopper.call("GET", service, path).status_code == 401, service


def test_deletion_while_cart_and_order_are_down_is_delivered_later(
    platform: LocalPlatform, new_shopper: Callable[[], Shopper], admin: Shopper
) -> None:
    shopper = new_shopper()
    mouse = find_product(shopper, "mouse")
    shopper.call(
        "POST", "cart", "/api/v1/cart/items", json={"productId": mouse["id"], "quantity": 2}
    )
    assert shopper.call("POST", "order", "/api/v1/orders").status_code == 201
    shopper.call(
        "POST", "cart", "/api/v1/cart/items", json={"productId": mouse["id"], "quantity": 1}
    )

    platform.stop_service("cart")
    platform.stop_service("order")
    try:
        assert shopper.call("DELETE", "auth", f"/api/v1/users/{shopper.user_id}").status_code == 204
        # auth restarts while the cascade is still pending: the intent is in its database.
        platform.stop_service("auth")
        platform.start_service("auth")
    finally:
        platform.start_service("cart")
        platform.start_service("order")

    def everything_gone() -> bool:
        orders = admin.call("GET", "order", "/api/v1/orders", params={"userId": shopper.user_id})
        return (
            orders.json()["total"] == 0 and internal_cart(platform, shopper.user_id)["lines"] == []
        )

    eventually(everything_gone, timeout=30)


def test_product_down_means_503_and_nothing_written(
    platform: LocalPlatform, new_shopper: Callable[[], Shopper]
) -> None:
    shopper = new_shopper()
    lamp = find_product(shopper, "lamp")
    platform.stop_service("product")
    try:
        added = shopper.call(
            "POST", "cart", "/api/v1/cart/items", json={"productId": lamp["id"], "quantity": 1}
        )
        assert added.status_code == 503, added.text
        assert added.headers["content-type"].startswith("application/problem+json")
        assert int(added.headers["retry-after"]) >= 1
        assert added.elapsed.total_seconds() < 5
    finally:
        platform.start_service("product")
    assert internal_cart(platform, shopper.user_id)["lines"] == []


def test_concurrent_checkouts_of_the_last_unit(
    platform: LocalPlatform, new_shopper: Callable[[], Shopper], admin: Shopper
) -> None:
    product_id = new_product(admin, stock=1)
    shoppers = [new_shopper() for _ in range(6)]
    for shopper in shoppers:
        added = shopper.call(
            "POST", "cart", "/api/v1/cart/items", json={"productId": product_id, "quantity": 1}
        )
        assert added.status_code == 200, added.text
    with ThreadPoolExecutor(len(shoppers)) as pool:
        results = list(pool.map(lambda s: s.call("POST", "order", "/api/v1/orders"), shoppers))
    codes = sorted(r.status_code for r in results)
    assert codes == [201, 409, 409, 409, 409, 409], [r.text for r in results]
    refused = next(r for r in results if r.status_code == 409).json()
    assert product_id in str(refused)
    assert stock_of(admin, product_id) == 0
