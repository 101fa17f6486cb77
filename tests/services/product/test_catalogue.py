"""Listing, filtering, sorting and paging the catalogue; one product; the sample data."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from services.local.mongo_server import MongoServer
from services.product.catalogue import read_catalogue
from tests.conftest import RunningService
from tests.services.product.conftest import product_id

PROBLEM = "application/problem+json"


def test_sample_catalogue_has_at_least_twenty_valid_products() -> None:
    products = read_catalogue()
    assert len(products) >= 20
    assert len({p.sku for p in products}) == len(products)
    assert len({p.category for p in products}) >= 3


async def test_list_pages_through_everything(stocked: RunningService) -> None:
    total = len(read_catalogue())
    seen: list[str] = []
    page = 1
    while True:
        body = (
            await stocked.client.get("/api/v1/products", params={"page": page, "pageSize": 7})
        ).json()
        assert body["total"] == total and body["pageSize"] == 7 and body["page"] == page
        seen += [item["id"] for item in body["items"]]
        if len(body["items"]) < 7:
            break
        page += 1
    assert len(seen) == len(set(seen)) == total


@pytest.mark.parametrize("size", [0, 501, -1])
async def test_page_size_is_bounded(stocked: RunningService, size: int) -> None:
    response = await stocked.client.get("/api/v1/products", params={"pageSize": size})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(PROBLEM)
    assert "pageSize" in response.text


async def test_page_size_above_the_configured_maximum(stocked: RunningService) -> None:
    response = await stocked.client.get("/api/v1/products", params={"pageSize": 200})
    assert response.status_code == 400
    assert "at most 100" in response.json()["detail"]


async def test_sort_by_price_both_ways_and_by_name(stocked: RunningService) -> None:
    async def prices(sort: str) -> list[int]:
        body = (
            await stocked.client.get("/api/v1/products", params={"sort": sort, "pageSize": 100})
        ).json()
        return [item["priceCents"] for item in body["items"]]

    up, down = await prices("price"), await prices("-price")
    assert up == sorted(up) and down == sorted(down, reverse=True) and up
    names = [
        item["name"].casefold()
        for item in (await stocked.client.get("/api/v1/products", params={"pageSize": 100})).json()[
            "items"
        ]
    ]
    assert names == sorted(names)
    bad = await stocked.client.get("/api/v1/products", params={"sort": "stock"})
    assert bad.status_code == 400


async def test_text_and_category_filters(stocked: RunningService) -> None:
    body = (await stocked.client.get("/api/v1/products", params={"q": "KEYBOARD"})).json()
    assert body["total"] >= 1
    assert all("keyboard" in (i["name"] + i["description"]).lower() for i in body["items"])
    audio = (await stocked.client.get("/api/v1/products", params={"category": "audio"})).json()
    assert audio["total"] >= 1 and {i["category"] for i in audio["items"]} == {"audio"}
    none = (await stocked.client.get("/api/v1/products", params={"q": ".*"})).json()
    assert none["total"] == 0  # the text is matched literally, never as a pattern


async def test_get_one_and_unknown_or_malformed_ids(stocked: RunningService) -> None:
    pid = await product_id(stocked, "KB-001")
    one = (await stocked.client.get(f"/api/v1/products/{pid}")).json()
    assert one["sku"] == "KB-001" and one["stock"] == 25 and one["priceCents"] == 8999
    for bad in ("0123456789abcdef01234567", "not-an-id"):
        response = await stocked.client.get(f"/api/v1/products/{bad}")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.json()["title"] == "Not Found"


async def test_lookup_by_ids(stocked: RunningService) -> None:
    a, b = await product_id(stocked, "KB-001"), await product_id(stocked, "MS-002")
    body = (await stocked.client.get("/api/v1/products", params={"ids": f"{a},{b},junk"})).json()
    assert sorted(i["id"] for i in body["items"]) == sorted([a, b])


async def test_load_catalogue_command_is_idempotent(
    mongo_server: MongoServer, db_prefix: str
) -> None:
    env = {**os.environ, "MONGO_URI": mongo_server.uri, "MONGO_DB": f"{db_prefix}_cli"}
    command = [sys.executable, "-m", "services.product", "load-catalogue"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    count = len(read_catalogue())
    assert f"{count} new, 0 refreshed" in first.stdout
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert f"0 new, {count} refreshed" in second.stdout


async def test_load_catalogue_rejects_a_bad_file(tmp_path, mongo_server: MongoServer) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"sku": "X", "name": "", "category": "a", "priceCents": -1}]')
    env = {**os.environ, "MONGO_URI": mongo_server.uri, "MONGO_DB": "unused"}
    result = subprocess.run(
        [sys.executable, "-m", "services.product", "load-catalogue", str(bad)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "bad.json" in result.stderr and "name" in result.stderr
