"""A shopper's whole journey through the ingress of the platform on kind: register, sign in,
browse, add to cart, check out, see the order; the seed routes answer there too, and the
internal API does not."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e_kind.conftest import Platform

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


def test_register_sign_in_add_to_cart_and_check_out(platform: Platform) -> None:
    email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    with platform.client() as http:
        registered = http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert registered.status_code == 201, registered.text

        signed_in = http.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
        assert signed_in.status_code == 200, signed_in.text
        auth = {"Authorization": f"Bearer {signed_in.json()['accessToken']}"}

        listed = http.get("/api/v1/products", params={"pageSize": 50})
        assert listed.status_code == 200, listed.text
        in_stock = [p for p in listed.json()["items"] if p["stock"] >= 2]
        assert in_stock, "the sample catalogue has no product in stock"
        product = in_stock[0]

        added = http.post(
            "/api/v1/cart/items", headers=auth, json={"productId": product["id"], "quantity": 2}
        )
        assert added.status_code == 200, added.text
        cart = http.get("/api/v1/cart", headers=auth)
        assert cart.status_code == 200, cart.text

        key = {"Idempotency-Key": str(uuid.uuid4())}
        placed = http.post("/api/v1/orders", headers={**auth, **key})
        assert placed.status_code == 201, placed.text
        order = placed.json()
        assert [(line["productId"], line["quantity"]) for line in order["lines"]] == [
            (product["id"], 2)
        ]
        assert order["totalCents"] == 2 * product["priceCents"]

        # The same key again is the same order, not a second one.
        again = http.post("/api/v1/orders", headers={**auth, **key})
        assert again.status_code in (200, 201), again.text
        assert again.json()["id"] == order["id"]

        mine = http.get("/api/v1/orders", headers=auth)
        assert [o["id"] for o in mine.json()["items"]] == [order["id"]]
        after = http.get(f"/api/v1/products/{product['id']}").json()
        assert after["stock"] == product["stock"] - 2


def test_seed_routes_answer_through_the_ingress(platform: Platform) -> None:
    email = f"e2e-seed-{uuid.uuid4().hex[:10]}@example.com"
    with platform.client() as http:
        made = http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert made.status_code == 201, made.text
        signed = http.post("/api/user/login", json={"email": email, "password": PASSWORD})
        assert signed.status_code == 200, signed.text
        auth = {"Authorization": f"Bearer {signed.json()['accessToken']}"}
        assert http.get("/api/auth/verify-token", headers=auth).status_code == 200
        products = http.get("/api/get-product", params={"pageSize": 1})
        assert products.status_code == 200, products.text
        (first,) = products.json()["items"]
        one = http.get("/api/get-product-one", params={"id": first["id"]})
        assert one.status_code == 200 and one.json()["id"] == first["id"]
        assert http.get("/api/cart/get-cart/", headers=auth).status_code == 200
        assert http.get("/api/order", headers=auth).status_code == 200


@pytest.mark.parametrize(
    "path", ["/internal/v1/reservations", "/internal/v1/users/x/cart", "/metrics", "/healthz"]
)
def test_internal_paths_are_not_exposed(platform: Platform, path: str) -> None:
    with platform.client() as http:
        # ingress-nginx's default backend answers: no service ever sees the request.
        assert http.get(path).status_code == 404
        assert http.post(path, json={}).status_code == 404
