"""What the cart needs from the product service: current name, price and stock of products."""

from __future__ import annotations

from collections.abc import Collection

import msgspec

from services.kit.http import ServiceClient


class ProductInfo(msgspec.Struct, rename="camel"):
    """The fields of product's ``Product`` the cart reads (other fields are ignored)."""

    id: str
    name: str
    price_cents: int
    currency: str
    stock: int


class _ProductPage(msgspec.Struct, rename="camel"):
    items: list[ProductInfo]


class ProductCatalogue:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def lookup(self, product_ids: Collection[str]) -> dict[str, ProductInfo]:
        """The products among ``product_ids`` that exist, by id, in one call."""
        if not product_ids:
            return {}
        response = await self.client.request(
            "GET",
            "/api/v1/products",
            params={"ids": ",".join(sorted(product_ids)), "pageSize": len(product_ids)},
        )
        if response.status_code != 200:
            raise self.client.unexpected(response)
        page = self.client.decode(response, _ProductPage)
        return {product.id: product for product in page.items}
