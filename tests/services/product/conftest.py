"""Fixtures of the product tests: the service with the sample catalogue loaded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.product.catalogue import load_catalogue, read_catalogue
from tests.conftest import RunningService


@pytest.fixture
async def stocked(product: RunningService) -> AsyncIterator[RunningService]:
    """The product service with the sample catalogue (loaded as the documented command does)."""
    await load_catalogue(product.app.state.db, read_catalogue())
    return product


async def product_id(service: RunningService, sku: str) -> str:
    doc = await service.app.state.db.products.find_one({"sku": sku})
    assert doc is not None, sku
    return str(doc["_id"])
