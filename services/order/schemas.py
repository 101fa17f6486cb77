"""Request and response bodies of the order service. Prices are integers in minor units."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar.params import KwargDefinition
from msgspec import Meta

from services.kit.contracts import MAX_LINES, LineItem, Page

OrderStatus = Literal["placed", "cancelled"]


class OrderLine(msgspec.Struct, rename="camel"):
    """One product of an order, with its price as it was when the order was placed."""

    product_id: str
    name: str
    quantity: int
    unit_price_cents: int
    currency: str
    line_total_cents: int


class Order(msgspec.Struct, rename="camel"):
    id: str
    user_id: str
    status: OrderStatus
    lines: list[OrderLine]
    total_cents: int
    currency: str
    created_at: datetime
    cancel_reason: str | None = None


OrderPage = Annotated[Page[Order], KwargDefinition(schema_component_key="OrderPage")]


class SeedOrderCreate(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """Seed 002's ``POST /api/order`` body: empty (check out the cart) or the items to order."""

    items: Annotated[list[LineItem], Meta(min_length=1, max_length=MAX_LINES)] | None = None
    # Seed clients name the user; it must be the caller.
    user_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
