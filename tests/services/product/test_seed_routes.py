"""Seed 000's product routes answer as the clean API does."""

from __future__ import annotations

from tests.conftest import RunningService
from tests.services.product.conftest import product_id


async def test_get_product_lists_like_the_clean_route(stocked: RunningService) -> None:
    seed = (await stocked.client.get("/api/get-product", params={"pageSize": 5})).json()
    clean = (await stocked.client.get("/api/v1/products", params={"pageSize": 5})).json()
    assert seed == clean


async def test_get_product_one_by_query_and_by_path(stocked: RunningService) -> None:
    pid = await product_id(stocked, "MS-002")
    by_query = await stocked.client.get("/api/get-product-one", params={"id": pid})
    by_path = await stocked.client.get(f"/api/get-product-one/{pid}")
    assert by_query.status_code == by_path.status_code == 200
    assert by_query.json()["sku"] == by_path.json()["sku"] == "MS-002"
    missing = await stocked.client.get("/api/get-product-one")
    assert missing.status_code == 400 and "id" in missing.json()["detail"]
    unknown = await stocked.client.get("/api/get-product-one", params={"id": "f" * 24})
    assert unknown.status_code == 404
