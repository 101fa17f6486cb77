"""What the cart needs from the product service: current name, price and stock of products.

A cart *view* may show product facts up to ``product_facts_max_age_seconds`` old (2 s unless
set): the catalogue remembers what product last said about each product, bounded in count, and
asks again only for those it has not heard about lately. Adding or changing a line reads them
fresh (its stock check and the price the line remembers), and checkout prices the order from
product itself, so a stale fact is only ever shown, never charged.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Collection

import msgspec

from services.kit.contracts import Page
from services.kit.http import ServiceClient

DISPLAY_MAX_AGE_SECONDS = 2.0
MAX_REMEMBERED = 10_000


class ProductInfo(msgspec.Struct, rename="camel"):
    """The fields of product's ``Product`` the cart reads (other fields are ignored)."""

    id: str
    name: str
    price_cents: int
    currency: str
    stock: int


class ProductCatalogue:
    def __init__(
        self,
        client: ServiceClient,
        *,
        display_max_age: float = DISPLAY_MAX_AGE_SECONDS,
        max_remembered: int = MAX_REMEMBERED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.display_max_age = display_max_age
        self.max_remembered = max_remembered
        self.clock = clock
        # product id -> (when heard, what product said: the facts, or None for no such product)
        self._heard: OrderedDict[str, tuple[float, ProductInfo | None]] = OrderedDict()

    async def lookup(self, product_ids: Collection[str]) -> dict[str, ProductInfo]:
        """The products among ``product_ids`` that exist, by id, asked of product now (one call)."""
        if not product_ids:
            return {}
        response = await self.client.request(
            "GET",
            "/api/v1/products",
            params={"ids": ",".join(sorted(product_ids)), "pageSize": len(product_ids)},
        )
        if response.status_code != 200:
            raise self.client.unexpected(response)
        found = {
            product.id: product for product in self.client.decode(response, Page[ProductInfo]).items
        }
        self._remember(product_ids, found)
        return found

    async def for_display(self, product_ids: Collection[str]) -> dict[str, ProductInfo]:
        """The same, from what product said at most ``display_max_age`` seconds ago where it
        may; the rest asked of product in one call."""
        now = self.clock()
        known: dict[str, ProductInfo] = {}
        missing: list[str] = []
        for product_id in product_ids:
            heard = self._heard.get(product_id)
            if heard is None or now - heard[0] > self.display_max_age:
                missing.append(product_id)
            elif heard[1] is not None:
                known[product_id] = heard[1]
        if missing:
            known.update(await self.lookup(missing))
        return known

    def _remember(self, asked: Collection[str], found: dict[str, ProductInfo]) -> None:
        if self.display_max_age <= 0:
            return
        now = self.clock()
        for product_id in asked:
            self._heard[product_id] = (now, found.get(product_id))
            self._heard.move_to_end(product_id)
        while len(self._heard) > self.max_remembered:
            self._heard.popitem(last=False)
