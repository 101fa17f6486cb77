"""Request and response bodies of the product service. Prices are integers in minor units."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

import msgspec
from litestar.params import KwargDefinition
from msgspec import UNSET, Meta, UnsetType

from services.kit.contracts import Page, ReservedLine

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Description = Annotated[str, Meta(max_length=4000)]
Category = Annotated[str, Meta(min_length=1, max_length=50, pattern=r"^[a-z0-9][a-z0-9-]*$")]
Sku = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
PriceCents = Annotated[int, Meta(ge=0, le=1_000_000_000)]
Stock = Annotated[int, Meta(ge=0, le=10_000_000)]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
SortKey = Literal["name", "-name", "price", "-price", "newest"]


class ProductCreate(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    sku: Sku
    name: Name
    category: Category
    price_cents: PriceCents
    stock: Stock = 0
    currency: Currency = "EUR"
    description: Description = ""
    image_url: Annotated[str, Meta(max_length=500)] | None = None


class ProductUpdate(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    # An empty update is refused (400), and the OpenAPI document says so (minProperties).
    min_properties: ClassVar[int] = 1

    name: Name | UnsetType = UNSET
    category: Category | UnsetType = UNSET
    price_cents: PriceCents | UnsetType = UNSET
    stock: Stock | UnsetType = UNSET
    currency: Currency | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    image_url: Annotated[str, Meta(max_length=500)] | UnsetType | None = UNSET


class Product(msgspec.Struct, rename="camel"):
    id: str
    sku: str
    name: str
    category: str
    price_cents: int
    currency: str
    stock: int
    description: str
    created_at: datetime
    updated_at: datetime
    image_url: str | None = None


ProductPage = Annotated[Page[Product], KwargDefinition(schema_component_key="ProductPage")]


class CategoryList(msgspec.Struct, rename="camel"):
    items: list[str]


ReservationId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
Quantity = Annotated[int, Meta(ge=1, le=1000)]


class ReservationItem(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    product_id: Annotated[str, Meta(min_length=1, max_length=64)]
    quantity: Quantity


ReservationItems = Annotated[list[ReservationItem], Meta(min_length=1, max_length=100)]


class ReservationCreate(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    reservation_id: ReservationId
    items: ReservationItems
    # ``commit``: the stock is sold at once (one conditional write per item, no record, no
    # commit call): order's checkout. Without it, the two-phase reservation (reserve, then
    # commit or release) of the first API.
    commit: bool = False
    # No stock is taken after this moment (409): a caller that gave up on a slow call, and
    # cleans up after this time, cannot be overtaken by that call's late takes.
    not_after: datetime | None = None


class ReservationRelease(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """The items of a committed-at-once reservation to give back (its caller could not place
    the order). Each product gives its units back once, and only if this reservation took them."""

    items: ReservationItems


class ReservationSettle(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """Reservations committed at once whose orders are placed: forget their marks on the
    products (they could never be released any more)."""

    reservation_ids: Annotated[list[ReservationId], Meta(min_length=1, max_length=500)]


class Settled(msgspec.Struct, rename="camel"):
    products: int


class Reservation(msgspec.Struct, rename="camel"):
    reservation_id: str
    state: str
    lines: list[ReservedLine]
