"""What the order service needs from its dependencies: stock reservations in product, and the
user's cart (read it, then take out what was ordered) in cart."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
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

    async def reserve(
        self,
        reservation_id: str,
        items: Sequence[LineItem],
        *,
        commit: bool = False,
        not_after: datetime | None = None,
    ) -> list[ReservedLine]:
        """Take stock for every item or none; a shortage or an unknown product is a 409 naming
        the products. ``commit``: sold at once (no commit call), taken no later than
        ``not_after``; given back with ``release(reservation_id, items)``."""
        body: dict[str, Any] = {"reservationId": reservation_id, "items": _items(items)}
        if commit:
            body["commit"] = True
        if not_after is not None:
            body["notAfter"] = not_after.isoformat()
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

    async def release(self, reservation_id: str, items: Sequence[LineItem] | None = None) -> None:
        """Give the stock back (a no-op for a reservation product never made); ``items`` for one
        committed at once."""
        path = f"/internal/v1/reservations/{reservation_id}/release"
        body = None if items is None else {"items": _items(items)}
        response = await self._call(path, reservation_id, body)
        if response.status_code != 200:
            raise self.client.unexpected(response)

    async def settle(self, reservation_ids: Sequence[str]) -> None:
        """Tell product that these reservations, committed at once, belong to placed orders."""
        response = await self.client.request(
            "POST",
            "/internal/v1/reservations/settle",
            json={"reservationIds": list(reservation_ids)},
            # Settling twice changes nothing: the call may be retried.
            headers={IDEMPOTENCY_HEADER: f"settle:{reservation_ids[0]}"},
            internal=True,
        )
        if response.status_code != 200:
            raise self.client.unexpected(response)


def _items(items: Sequence[LineItem]) -> list[dict[str, Any]]:
    return [{"productId": i.product_id, "quantity": i.quantity} for i in items]


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
