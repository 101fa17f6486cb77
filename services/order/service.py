"""Order logic: checkout (from the cart, or from given items), reading orders, deleting a user's
orders, and finishing orders whose last steps had to wait for a dependency.

Checkout, in order: read the cart; reserve the stock in product (all or nothing, never below
zero) under a reservation id made from the new order's id; store the complete order, with the
prices product reserved at; commit the reservation; take the ordered lines out of the cart. A
failure before the order is stored releases the reservation and stores nothing (should the
release itself fail, product's stale-reservation sweeper returns the stock); once the order is
stored, the remaining steps are recorded on it and retried until done.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bson import ObjectId

from services.kit.contracts import CartRemoval, LineItem, Page, ReservedLine
from services.kit.errors import BadRequest, Conflict, Forbidden, NotFound
from services.kit.http import DependencyUnavailable
from services.kit.locks import KeyedLocks
from services.kit.mongo import Database, Document, from_document, parse_object_id
from services.kit.revocation import DeletedUsers
from services.kit.security import ensure_self_or_admin
from services.kit.tokens import Principal
from services.order.clients import CartClient, StockReservations
from services.order.repository import DuplicateCheckout, OrderRepository
from services.order.schemas import Order, OrderPage

log = logging.getLogger(__name__)

COMMIT_STOCK = "commitStock"
TRIM_CART = "trimCart"
RESERVATION_LOST = "The stock reservation expired before the order was confirmed."


@dataclass(frozen=True, slots=True)
class Placement:
    order: Order
    created: bool  # False: an earlier checkout with the same Idempotency-Key made this order


def to_order(doc: Document) -> Order:
    return from_document(doc, Order)


def merged(items: Sequence[LineItem]) -> list[LineItem]:
    """One item per product (quantities added up), in first-seen order."""
    quantities: dict[str, int] = {}
    for item in items:
        quantities[item.product_id] = quantities.get(item.product_id, 0) + item.quantity
    return [LineItem(product_id=pid, quantity=q) for pid, q in quantities.items()]


def priced_lines(reserved: Sequence[ReservedLine]) -> tuple[list[Document], int, str]:
    currencies = {line.currency for line in reserved}
    if len(currencies) != 1:
        raise Conflict("The products of one order must be priced in one currency.")
    lines: list[Document] = [
        {
            "productId": line.product_id,
            "name": line.name,
            "quantity": line.quantity,
            "unitPriceCents": line.price_cents,
            "currency": line.currency,
            "lineTotalCents": line.price_cents * line.quantity,
        }
        for line in reserved
    ]
    return lines, sum(line["lineTotalCents"] for line in lines), currencies.pop()


class OrderService:
    def __init__(
        self,
        db: Database,
        stock: StockReservations,
        carts: CartClient,
        *,
        max_page_size: int,
        finish_grace_seconds: float,
        deleted: DeletedUsers | None = None,
    ) -> None:
        self.repo = OrderRepository(db)
        self.deleted = deleted or DeletedUsers(db)
        self.stock = stock
        self.carts = carts
        self.max_page_size = max_page_size
        self.finish_grace = timedelta(seconds=finish_grace_seconds)
        # One checkout per user at a time in this process: a double-submitted checkout sees the
        # first one's order (or the emptied cart), and a deletion waits for a checkout in flight.
        # Held across the calls to product and cart: a lease that outlives them with retries.
        self.locks = KeyedLocks(db.locks, "checkout", lease_seconds=60.0)

    # --- checkout -----------------------------------------------------------------------------

    async def place(
        self,
        principal: Principal,
        idempotency_key: str | None = None,
        items: Sequence[LineItem] | None = None,
        named_user: str | None = None,
    ) -> Placement:
        """Check out the caller's cart, or ``items`` when given (the cart is then left alone).

        ``named_user`` is a user id the request named (seed 002 clients send one): it must be
        the caller's own.
        """
        user_id = principal.user_id
        if named_user is not None and named_user != user_id:
            raise Forbidden("Orders are placed for yourself only.")
        order_id = ObjectId()
        checkout_key = (
            f"order:{order_id}" if idempotency_key is None else f"key:{user_id}:{idempotency_key}"
        )
        async with self.locks.hold(user_id):
            # Here, not at the token check (the routes leave it to this): a deletion recorded
            # before the lock was taken wins, and the deletion waits for a checkout in flight.
            await self.deleted.refuse_if_deleted(user_id)
            if idempotency_key is not None:
                earlier = await self.repo.by_checkout_key(checkout_key)
                if earlier is not None:
                    return Placement(to_order(earlier), created=False)
            if items is None:
                wanted = (await self.carts.contents(user_id)).lines
                if not wanted:
                    raise Conflict("The cart is empty.")
                return await self._place(order_id, user_id, checkout_key, wanted, from_cart=True)
            return await self._place(
                order_id, user_id, checkout_key, merged(items), from_cart=False
            )

    async def _place(
        self,
        order_id: ObjectId,
        user_id: str,
        checkout_key: str,
        wanted: list[LineItem],
        from_cart: bool,
    ) -> Placement:
        # A fresh reservation id per attempt: product never reserves a released or failed id
        # again, so a checkout retried after a failure must not reuse one.
        reservation_id = f"order-{order_id}"
        try:
            reserved = await self.stock.reserve(reservation_id, wanted)
        except DependencyUnavailable:
            # The reservation may have been made before the answer was lost.
            await self._release_quietly(reservation_id)
            raise
        try:
            lines, total, currency = priced_lines(reserved)
            now = datetime.now(UTC)
            doc: Document = {
                "_id": order_id,
                "userId": user_id,
                "checkoutKey": checkout_key,
                "status": "placed",
                "lines": lines,
                "totalCents": total,
                "currency": currency,
                "reservationId": reservation_id,
                "pendingSteps": [COMMIT_STOCK, TRIM_CART] if from_cart else [COMMIT_STOCK],
                "createdAt": now,
                "updatedAt": now,
            }
            await self.repo.insert(doc)
        except DuplicateCheckout:
            # The same keyed checkout finished first on another replica: answer with its order.
            await self._release_quietly(reservation_id)
            earlier = await self.repo.by_checkout_key(checkout_key)
            assert earlier is not None
            return Placement(to_order(earlier), created=False)
        except Exception:
            # Includes a failed insert that did reach the database: that order then finds its
            # reservation gone when the worker commits it, and is cancelled.
            await self._release_quietly(reservation_id)
            raise
        log.info("order placed", extra={"orderId": str(order_id), "userId": user_id})
        return Placement(to_order(await self.finish(doc)), created=True)

    async def _release_quietly(self, reservation_id: str) -> None:
        try:
            await self.stock.release(reservation_id)
        except DependencyUnavailable as exc:
            # Product's stale-reservation sweeper gives the stock back later.
            log.warning(
                "reservation not released",
                extra={"reservationId": reservation_id, "reason": exc.reason},
            )

    # --- the steps after an order is stored ---------------------------------------------------

    async def finish(self, doc: Document) -> Document:
        """Do the order's pending steps; a step whose dependency is down waits for the worker."""
        order_id: ObjectId = doc["_id"]
        current: Document | None = doc
        try:
            if COMMIT_STOCK in doc["pendingSteps"]:
                if not await self.stock.commit(doc["reservationId"]):
                    log.error("order cancelled", extra={"orderId": str(order_id)})
                    current = await self.repo.cancel(order_id, RESERVATION_LOST)
                    return current or doc
                current = await self.repo.step_done(order_id, COMMIT_STOCK)
            if TRIM_CART in doc["pendingSteps"]:
                removal = CartRemoval(
                    removal_id=f"order-{order_id}",
                    lines=[
                        LineItem(product_id=line["productId"], quantity=line["quantity"])
                        for line in doc["lines"]
                    ],
                )
                await self.carts.take_out(doc["userId"], removal)
                current = await self.repo.step_done(order_id, TRIM_CART)
        except DependencyUnavailable as exc:
            log.warning(
                "order step postponed", extra={"orderId": str(order_id), "reason": exc.reason}
            )
            current = await self.repo.postpone(order_id)
        return current or doc

    async def finish_due(self) -> int:
        """One pass of the worker: finish orders whose steps have waited past the grace time."""
        due = await self.repo.due(datetime.now(UTC) - self.finish_grace)
        for doc in due:
            await self.finish(doc)
        return len(due)

    # --- reading ------------------------------------------------------------------------------

    async def list_for(
        self, principal: Principal, user_id: str, page: int, page_size: int
    ) -> OrderPage:
        ensure_self_or_admin(principal, user_id)
        if page_size > self.max_page_size:
            raise BadRequest(f"pageSize may be at most {self.max_page_size}.")
        docs, total = await self.repo.page_for_user(user_id, (page - 1) * page_size, page_size)
        return Page(
            items=[to_order(doc) for doc in docs], page=page, page_size=page_size, total=total
        )

    async def get(self, principal: Principal, order_id: str) -> Order:
        oid = parse_object_id(order_id)
        doc = None if oid is None else await self.repo.get(oid)
        # Someone else's order is "not found" too: its existence is not the caller's business.
        if doc is None or (doc["userId"] != principal.user_id and not principal.is_admin):
            raise NotFound(f"No order with id {order_id!r}.")
        return to_order(doc)

    # --- deletion -----------------------------------------------------------------------------

    async def delete_user(self, user_id: str) -> None:
        """The deletion cascade: refuse the user's tokens from now on, then delete the orders."""
        await self.deleted.record(user_id)
        await self._delete_orders(user_id)

    async def delete_orders(self, admin: Principal | None, user_id: str) -> None:
        """Seed 002's delete: from a service (``admin`` None) it is the cascade; an admin only
        deletes the orders."""
        if admin is None:
            await self.delete_user(user_id)
        else:
            await self._delete_orders(user_id)

    async def _delete_orders(self, user_id: str) -> None:
        async with self.locks.hold(user_id):
            removed = await self.repo.delete_for_user(user_id)
        log.info("user's orders deleted", extra={"userId": user_id, "orders": removed})
