"""Request and response bodies of the cart service. Prices are integers in minor units."""

from __future__ import annotations

import msgspec

from services.kit.contracts import ProductId, Quantity


class CartItemCreate(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    product_id: ProductId
    quantity: Quantity = 1


class CartItemUpdate(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    quantity: Quantity


class CartLine(msgspec.Struct, rename="camel"):
    product_id: str
    quantity: int
    # Current product data; ``available`` is false (and the prices null) for a product that has
    # left the catalogue since it was added.
    available: bool
    in_stock: bool
    name: str | None
    unit_price_cents: int | None
    currency: str | None
    line_total_cents: int | None
    # The unit price when the line was last added to (null for lines older than this field):
    # a client can tell the shopper the price changed since.
    added_unit_price_cents: int | None = None


class Cart(msgspec.Struct, rename="camel"):
    user_id: str
    lines: list[CartLine]
    item_count: int
    # The sum of the available lines; null if they are priced in more than one currency.
    total_cents: int | None
    currency: str | None
