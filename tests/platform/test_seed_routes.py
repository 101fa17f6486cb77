"""Every endpoint the two seed documents list answers, over the running platform, with the same
auth rules as the clean route it maps to."""

from __future__ import annotations

from collections.abc import Callable

from services.local.platform import LocalPlatform
from tests.platform.conftest import PASSWORD, Shopper, internal_headers


def test_seed_000_auth_routes(platform: LocalPlatform, new_shopper: Callable[[], Shopper]) -> None:
    shopper = Shopper(platform, "seed000@example.com")
    made = shopper.http.post(
        shopper.url("auth", "/api/auth/register"),
        json={"email": shopper.email, "password": PASSWORD},
    )
    assert made.status_code == 201, made.text
    signed = shopper.http.post(
        shopper.url("auth", "/api/auth/signin"), json={"email": shopper.email, "password": PASSWORD}
    )
    assert signed.status_code == 200
    shopper.token = signed.json()["accessToken"]
    verified = shopper.call("GET", "auth", "/api/auth/verify-token")
    assert verified.status_code == 200
    assert verified.json()["user"]["email"] == "seed000@example.com"
    anonymous = shopper.http.get(shopper.url("auth", "/api/auth/verify-token"))
    assert anonymous.status_code == 401


def test_seed_002_user_routes(platform: LocalPlatform, new_shopper: Callable[[], Shopper]) -> None:
    shopper = Shopper(platform, "seed002@example.com")
    made = shopper.http.post(
        shopper.url("auth", "/api/user"), json={"email": shopper.email, "password": PASSWORD}
    )
    assert made.status_code == 201
    user_id = made.json()["id"]
    login = shopper.http.post(
        shopper.url("auth", "/api/user/login"), json={"email": shopper.email, "password": PASSWORD}
    )
    assert login.status_code == 200
    shopper.token = login.json()["accessToken"]
    assert shopper.call("GET", "auth", f"/api/user/{user_id}").json()["email"] == shopper.email
    other = new_shopper()
    assert other.call("GET", "auth", f"/api/user/{user_id}").status_code == 403
    assert other.call("DELETE", "auth", f"/api/user/{user_id}").status_code == 403
    assert shopper.call("DELETE", "auth", f"/api/user/{user_id}").status_code == 204
    assert (
        shopper.call("GET", "auth", f"/api/user/{user_id}").status_code == 401
    )  # token of a gone user


def test_seed_000_product_routes(
    platform: LocalPlatform, new_shopper: Callable[[], Shopper]
) -> None:
    shopper = new_shopper()
    listed = shopper.call("GET", "product", "/api/get-product", params={"pageSize": 3})
    assert listed.status_code == 200 and len(listed.json()["items"]) == 3
    first = listed.json()["items"][0]
    one = shopper.call("GET", "product", "/api/get-product-one", params={"id": first["id"]})
    assert one.json()["sku"] == first["sku"]
    by_path = shopper.call("GET", "product", f"/api/get-product-one/{first['id']}")
    assert by_path.json()["sku"] == first["sku"]


def test_seed_000_cart_routes(platform: LocalPlatform, new_shopper: Callable[[], Shopper]) -> None:
    shopper = new_shopper()
    items = shopper.call("GET", "product", "/api/get-product", params={"pageSize": 2}).json()
    first, second = items["items"][0]["id"], items["items"][1]["id"]
    added = shopper.call("POST", "cart", "/api/cart/add-to-cart", json={"productId": first})
    assert added.status_code == 200, added.text
    shopper.call("POST", "cart", "/api/cart/add-to-cart", json={"productId": second, "quantity": 2})
    for path in ("/api/cart/get-cart/", "/api/cart/get-cart"):
        lines = shopper.call("GET", "cart", path).json()["lines"]
        assert sorted((x["productId"], x["quantity"]) for x in lines) == sorted(
            [(first, 1), (second, 2)]
        )
    # The seed's token-in-the-path form, with no Authorization header at all.
    edited = shopper.http.get(
        shopper.url("cart", f"/api/cart/edit-quantity/{shopper.token}"),
        params={"productId": first, "quantity": 4},
    )
    assert edited.status_code == 200, edited.text
    assert {x["productId"]: x["quantity"] for x in edited.json()["lines"]}[first] == 4
    forged = shopper.http.get(
        shopper.url("cart", f"/api/cart/edit-quantity/{shopper.token[:-4]}AAAA"),
        params={"productId": first, "quantity": 1},
    )
    assert forged.status_code == 401
    assert shopper.call("DELETE", "cart", f"/api/cart/delete-cart/{second}").status_code == 204
    lines = shopper.call("GET", "cart", "/api/cart/get-cart/").json()["lines"]
    assert [(x["productId"], x["quantity"]) for x in lines] == [(first, 4)]
    anonymous = shopper.http.post(
        shopper.url("cart", "/api/cart/add-to-cart"), json={"productId": first}
    )
    assert anonymous.status_code == 401


def test_seed_002_order_routes(
    platform: LocalPlatform, new_shopper: Callable[[], Shopper], admin: Shopper
) -> None:
    shopper = new_shopper()
    product = shopper.call("GET", "product", "/api/get-product", params={"pageSize": 1}).json()
    product_id = product["items"][0]["id"]
    shopper.call("POST", "cart", "/api/cart/add-to-cart", json={"productId": product_id})
    from_cart = shopper.call("POST", "order", "/api/order")
    assert from_cart.status_code == 201, from_cart.text
    direct = shopper.call(
        "POST", "order", "/api/order", json={"items": [{"productId": product_id, "quantity": 1}]}
    )
    assert direct.status_code == 201, direct.text
    listed = shopper.call("GET", "order", f"/api/order/{shopper.user_id}").json()
    assert {o["id"] for o in listed["items"]} == {from_cart.json()["id"], direct.json()["id"]}
    other = new_shopper()
    assert other.call("GET", "order", f"/api/order/{shopper.user_id}").status_code == 403
    assert other.call("DELETE", "order", f"/api/order/{shopper.user_id}").status_code in (401, 403)
    assert admin.call("DELETE", "order", f"/api/order/{shopper.user_id}").status_code == 204
    assert shopper.call("GET", "order", f"/api/order/{shopper.user_id}").json()["total"] == 0
    with_key = shopper.http.delete(
        shopper.url("order", f"/api/order/{other.user_id}"), headers=internal_headers(platform)
    )
    assert with_key.status_code == 204
