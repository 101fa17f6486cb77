"""What the order service needs from its dependencies: stock reservations in product, and the
user's cart (read it, then take out what was ordered) in cart."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from services.kit.contracts import (
    CART_CONTENTS_PATH,
    CART_REMOVALS_PATH,
    CartContents,
    CartRemoval,
    LineItem,
    ReservedLine,
)
from services.kit.errors import Conflict
from services.kit.http import IDEMPOTENCY_HEADER, ServiceClient


class _Reservation(msgspec.Struct, rename="camel"):
    lines: list[ReservedLine]


class _ShortProduct(msgspec.Struct, rename="camel"):
    product_id: str
    name: str


class _StockProblem(msgspec.Struct, rename="camel"):
    out_of_stock: list[_ShortProduct] = []
    unknown_products: list[str] = []


class StockReservations:
    """Product's internal reservation API. The reservation id doubles as the idempotency key, so
    every call may be retried by the client and product applies it once."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def _call(self, path: str, reservation_id: str, body: Any = None) -> Any:
        return await self.client.request(
            "POST",
            path,
            json=body,
            headers={IDEMPOTENCY_HEADER: reservation_id},
            internal=True,
        )

    async def reserve(self, reservation_id: str, items: Sequence[LineItem]) -> list[ReservedLine]:
        """Take stock for every item or none; a shortage or an unknown product is a 409 naming
        the products."""
        body = {
            "reservationId": reservation_id,
            "items": [{"productId": i.product_id, "quantity": i.quantity} for i in items],
        }
        response = await self._call("/internal/v1/reservations", reservation_id, body)
        if response.status_code == 200:
            return self.client.decode(response, _Reservation).lines
        if response.status_code in (404, 409):
            problem = self.client.decode(response, _StockProblem)
            if problem.out_of_stock:
                names = ", ".join(p.name for p in problem.out_of_stock)
                raise Conflict(
                    f"Not enough stock for: {names}.",
                    extra={"outOfStock": msgspec.to_builtins(problem.out_of_stock)},
                )
            if problem.unknown_products:
                raise Conflict(
                    "Some products are no longer sold.",
                    extra={"unavailableProducts": problem.unknown_products},
                )
        raise self.client.unexpected(response)

    async def commit(self, reservation_id: str) -> bool:
        """Make the reserved stock sold; False if product no longer holds the reservation."""
        path = f"/internal/v1/reservations/{reservation_id}/commit"
        response = await self._call(path, reservation_id)
        if response.status_code == 200:
            return True
        if response.status_code in (404, 409):
            return False
        raise self.client.unexpected(response)

    async def release(self, reservation_id: str) -> None:
        """Give the stock back (a no-op for a reservation product never made)."""
        path = f"/internal/v1/reservations/{reservation_id}/release"
        response = await self._call(path, reservation_id)
        if response.status_code != 200:
            raise self.client.unexpected(response)


class CartClient:
    """Cart's internal API for checkouts."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def contents(self, user_id: str) -> CartContents:
        response = await self.client.request(
            "GET", CART_CONTENTS_PATH.format(user_id=user_id), internal=True
        )
        if response.status_code != 200:
            raise self.client.unexpected(response)
        return self.client.decode(response, CartContents)

    async def take_out(self, user_id: str, removal: CartRemoval) -> None:
        """Remove what an order took from the cart; applied once per removal id."""
        response = await self.client.request(
            "POST",
            CART_REMOVALS_PATH.format(user_id=user_id),
            json=msgspec.to_builtins(removal),
            headers={IDEMPOTENCY_HEADER: removal.removal_id},
            internal=True,
        )
        if response.status_code != 204:
            raise self.client.unexpected(response)
