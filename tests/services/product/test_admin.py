"""Admin-only create, update and delete; roles enforced; bad input writes nothing."""

from __future__ import annotations

import pytest

from tests.conftest import RunningService
from tests.infra.keys import Keyrings

PROBLEM = "application/problem+json"
NEW = {"sku": "TEST-1", "name": "Test Lamp", "category": "home", "priceCents": 1999, "stock": 4}


async def test_admin_creates_updates_and_deletes(
    product: RunningService, keyrings: Keyrings
) -> None:
    admin = keyrings.bearer("admin-1", "admin")
    created = await product.client.post("/api/v1/products", json=NEW, headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["currency"] == "EUR" and body["stock"] == 4
    pid = body["id"]
    updated = await product.client.patch(
        f"/api/v1/products/{pid}", json={"priceCents": 2499, "stock": 9}, headers=admin
    )
    assert updated.status_code == 200
    assert updated.json()["priceCents"] == 2499 and updated.json()["stock"] == 9
    assert updated.json()["name"] == "Test Lamp"
    fetched = (await product.client.get(f"/api/v1/products/{pid}")).json()
    assert fetched["priceCents"] == 2499
    deleted = await product.client.delete(f"/api/v1/products/{pid}", headers=admin)
    assert deleted.status_code == 204
    assert (await product.client.get(f"/api/v1/products/{pid}")).status_code == 404
    again = await product.client.delete(f"/api/v1/products/{pid}", headers=admin)
    assert again.status_code == 404


async def test_duplicate_sku_is_409(product: RunningService, keyrings: Keyrings) -> None:
    admin = keyrings.bearer("admin-1", "admin")
    assert (
        await product.client.post("/api/v1/products", json=NEW, headers=admin)
    ).status_code == 201
    dup = await product.client.post("/api/v1/products", json=NEW, headers=admin)
    assert dup.status_code == 409 and "TEST-1" in dup.json()["detail"]
    assert await product.app.state.db.products.count_documents({}) == 1


async def test_customers_and_anonymous_callers_are_refused(
    product: RunningService, keyrings: Keyrings
) -> None:
    anonymous = await product.client.post("/api/v1/products", json=NEW)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    customer = await product.client.post(
        "/api/v1/products", json=NEW, headers=keyrings.bearer("u1", "customer")
    )
    assert customer.status_code == 403
    assert customer.headers["content-type"].startswith(PROBLEM)
    assert await product.app.state.db.products.count_documents({}) == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({**NEW, "priceCents": -5}, id="negative-price"),
        pytest.param({**NEW, "priceCents": "twelve"}, id="price-as-text"),
        pytest.param({**NEW, "stock": 1.5}, id="fractional-stock"),
        pytest.param({**NEW, "category": "Not A Slug"}, id="bad-category"),
        pytest.param({**NEW, "sku": {"$gt": ""}}, id="injection"),
        pytest.param({**NEW, "currency": "euro"}, id="bad-currency"),
        pytest.param({**NEW, "reservations": ["x"]}, id="unknown-field"),
        pytest.param({k: v for k, v in NEW.items() if k != "name"}, id="missing-name"),
    ],
)
async def test_bad_products_are_refused(product: RunningService, keyrings: Keyrings, body) -> None:
    response = await product.client.post(
        "/api/v1/products", json=body, headers=keyrings.bearer("a", "admin")
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert await product.app.state.db.products.count_documents({}) == 0


async def test_empty_or_bad_update_is_refused(product: RunningService, keyrings: Keyrings) -> None:
    admin = keyrings.bearer("a", "admin")
    pid = (await product.client.post("/api/v1/products", json=NEW, headers=admin)).json()["id"]
    empty = await product.client.patch(f"/api/v1/products/{pid}", json={}, headers=admin)
    assert empty.status_code == 400
    inject = await product.client.patch(
        f"/api/v1/products/{pid}", json={"stock": {"$inc": 5}}, headers=admin
    )
    assert inject.status_code == 400
    unknown = await product.client.patch(
        "/api/v1/products/0123456789abcdef01234567", json={"stock": 1}, headers=admin
    )
    assert unknown.status_code == 404
    doc = await product.app.state.db.products.find_one({})
    assert doc["stock"] == 4
