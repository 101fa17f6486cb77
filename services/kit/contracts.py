"""Wire types shared by the services that serve them and those that call them (a page of a
listing; the cart's internal routes, which the order service calls; product's reservation lines,
which order keeps), kept in one place so the two sides cannot drift apart."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

import msgspec
from msgspec import Meta

# Product ids are opaque to cart and order; this shape keeps operators and paths out of them.
ProductId = Annotated[
    str,
    Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="a product id"),
]
MAX_LINE_QUANTITY = 99
# At most this many lines per cart or order (product accepts up to 100 items a reservation).
MAX_LINES = 50
Quantity = Annotated[int, Meta(ge=1, le=MAX_LINE_QUANTITY, description="units of one product")]
RemovalId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]

T = TypeVar("T")


class Page(msgspec.Struct, Generic[T], rename="camel"):
    """One page of a listing. A service names its own in the OpenAPI document with
    ``Annotated[Page[Item], KwargDefinition(schema_component_key="ItemPage")]``."""

    items: list[T]
    page: int  # 1-based
    page_size: int
    total: int  # items in the whole listing

    @property
    def pages(self) -> int:
        """How many pages the listing fills at this page size (at least one)."""
        return max(1, -(-self.total // self.page_size))


CART_CONTENTS_PATH = "/internal/v1/users/{user_id}/cart"
CART_REMOVALS_PATH = "/internal/v1/users/{user_id}/cart/removals"


class LineItem(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """Some units of one product: a cart line without prices, or an item to order."""

    product_id: ProductId
    quantity: Quantity


class CartContents(msgspec.Struct, rename="camel"):
    """A user's cart as the order service reads it: products and quantities, nothing else."""

    user_id: str
    lines: list[LineItem]


class CartRemoval(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """Take ``lines`` out of a cart once (by ``removal_id``): what an order took, nothing more."""

    removal_id: RemovalId
    lines: Annotated[list[LineItem], Meta(min_length=1, max_length=MAX_LINES)]


class ReservedLine(msgspec.Struct, rename="camel"):
    """A reserved item with the product's name and price at the moment of the reservation:
    product answers them, order keeps them as the order's lines."""

    product_id: str
    quantity: int
    name: str
    price_cents: int
    currency: str
