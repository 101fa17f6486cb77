"""A shopper's journeys through the platform's single public host, written once and run both
against kind (test_checkout_flow.py, through Traefik) and against local processes behind
the umbrella chart's own Ingress rules (test_journeys_local.py)."""

from __future__ import annotations

import uuid
from typing import Protocol

import httpx

from tests.charts.ingress_rules import NOT_FOUND_BODY


class Gateway(Protocol):
    """Something that hands out clients for the platform's public host."""

    def client(self) -> httpx.Client: ...


PASSWORD = "correct horse battery staple"


def checkout_journey(platform: Gateway) -> None:
    """Register, sign in, browse, add to cart, check out (twice with one key), see the order."""
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


def seed_journey(platform: Gateway) -> None:
    """The seed documents' routes answer through the same host."""
    email = f"e2e-seed-{uuid.uuid4().hex[:10]}@example.com"
    with platform.client() as http:
        made = http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert made.status_code == 201, made.text
        signed = http.post("/api/user/login", json={"email": email, "password": PASSWORD})
        assert signed.status_code == 200, signed.text
        auth = {"Authorization": f"Bearer {signed.json()['accessToken']}"}
        verified = http.get("/api/auth/verify-token", headers=auth)
        assert verified.status_code == 200, verified.text
        user_id = verified.json()["user"]["id"]
        products = http.get("/api/get-product", params={"pageSize": 1})
        assert products.status_code == 200, products.text
        (first,) = products.json()["items"]
        one = http.get("/api/get-product-one", params={"id": first["id"]})
        assert one.status_code == 200 and one.json()["id"] == first["id"]
        assert http.get("/api/cart/get-cart/", headers=auth).status_code == 200
        orders = http.get(f"/api/order/{user_id}", headers=auth)
        assert orders.status_code == 200, orders.text


INTERNAL_PATHS = ["/internal/v1/reservations", "/internal/v1/users/x/cart", "/metrics", "/healthz"]


def internal_paths_closed(platform: Gateway, path: str) -> None:
    """Service-to-service routes, metrics and probes are not reachable from outside."""
    with platform.client() as http:
        # No service ever sees the request: the ingress sends every path the services do not
        # serve publicly to the storefront at "/", whose not-found page answers (HTML, never a
        # service's problem+json); its own probes and metrics are no page for relayed requests.
        # Without the storefront, the ingress itself answers (Traefik's not-found text).
        for response in (http.get(path), http.post(path, json={})):
            if response.headers.get("content-type", "").startswith("text/html"):
                # The storefront's page: not found, or (a POST to its GET-only /metrics) not
                # possible; either way no service's.
                assert (response.status_code, response.request.method) in {
                    (404, "GET"),
                    (404, "POST"),
                    (405, "POST"),
                }, response.text
                assert "Checkout Shop" in response.text, response.text
            else:
                assert response.status_code == 404, response.text
                assert response.text == NOT_FOUND_BODY, response.text
