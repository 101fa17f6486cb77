"""Order logic: checkout (from the cart, or from given items), reading orders, deleting a user's
orders, and finishing orders whose last steps had to wait for a dependency.

Checkout, in order: read the cart (a checkout of the cart); store the order as ``pending`` (its
unique checkout key stops a keyed duplicate before any stock is taken); have product sell the
stock in one call (all or nothing, never below zero: one conditional write per item, taken no
later than the order's ``reserveBy``); turn the order ``placed`` with the prices product sold at;
take the ordered lines out of the cart. A checkout that does not get to ``placed`` abandons its
order and gives the stock back; the worker gives it back once more after the deadline (a late
retry of the reservation call cannot take stock after it) and then removes the order, and it
abandons pending orders whose checkout died. Placed orders are settled with product in batches.
On a database without atomic conditional updates (FerretDB) the steps that race run under the
user's checkout lock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bson import ObjectId

from services.kit.contracts import CartRemoval, LineItem, Page, ReservedLine
from services.kit.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable
from services.kit.http import DependencyUnavailable
from services.kit.locks import KeyedLocks
from services.kit.mongo import Database, Document, from_document, parse_object_id, stored_now
from services.kit.revocation import DeletedUsers
from services.kit.security import ensure_self_or_admin
from services.kit.tokens import Principal
from services.order.clients import CartClient, StockReservations
from services.order.repository import (
    ABANDONED,
    PENDING,
    PLACED,
    DuplicateCheckout,
    OrderRepository,
)
from services.order.schemas import Order, OrderPage

log = logging.getLogger(__name__)

# The steps an order may wait for. ``placeOrder``: a pending order's checkout is running (the
# worker abandons it when it is past its deadline); ``releaseStock``: an abandoned order's stock
# is to be given back; ``commitStock``: orders of earlier versions (two-phase reservations).
PLACE_ORDER = "placeOrder"
RELEASE_STOCK = "releaseStock"
COMMIT_STOCK = "commitStock"
TRIM_CART = "trimCart"
# After an order's reserveBy, how long until no call of its checkout can still be taking stock
# (a take that began before the deadline is a few database commands, each bounded).
DEADLINE_MARGIN = timedelta(seconds=5)
TOO_LATE = "The checkout did not finish in time; nothing was ordered. Try again."
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


def _aware(moment: datetime) -> datetime:
    # MongoDB hands dates back without a zone unless the client asks (they are UTC).
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class OrderService:
    def __init__(
        self,
        db: Database,
        stock: StockReservations,
        carts: CartClient,
        *,
        max_page_size: int,
        finish_grace_seconds: float,
        reserve_window_seconds: float = 10.0,
        deleted: DeletedUsers | None = None,
    ) -> None:
        self.repo = OrderRepository(db)
        self.deleted = deleted or DeletedUsers(db)
        self.stock = stock
        self.carts = carts
        self.max_page_size = max_page_size
        self.finish_grace = timedelta(seconds=finish_grace_seconds)
        self.reserve_window = timedelta(seconds=reserve_window_seconds)
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
                    return self._earlier(earlier)
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
        reservation_id = f"order-{order_id}"
        now = stored_now()
        reserve_by = now + self.reserve_window
        pending: Document = {
            "_id": order_id,
            "userId": user_id,
            "checkoutKey": checkout_key,
            "status": PENDING,
            "lines": [{"productId": i.product_id, "quantity": i.quantity} for i in wanted],
            "reservationId": reservation_id,
            "reserveBy": reserve_by,
            "pendingSteps": [PLACE_ORDER],
            "createdAt": now,
            "updatedAt": now,
        }
        try:
            await self.repo.insert(pending)
        except DuplicateCheckout:
            # The same keyed checkout ran first on another replica.
            earlier = await self.repo.by_checkout_key(checkout_key)
            if earlier is None:
                raise Conflict(
                    "A checkout with this Idempotency-Key just failed; try again."
                ) from None
            return self._earlier(earlier)
        try:
            reserved = await self.stock.reserve(
                reservation_id, wanted, commit=True, not_after=reserve_by
            )
            lines, total, currency = priced_lines(reserved)
        except BaseException:
            # A shortage, a mixed currency, product unreachable (the stock may have been taken
            # before the answer was lost), or this request cancelled.
            await self._abandon(order_id, reservation_id, wanted)
            raise
        placed: Document = {
            "lines": lines,
            "totalCents": total,
            "currency": currency,
            "pendingSteps": [TRIM_CART] if from_cart else [],
            "settleBy": reserve_by + DEADLINE_MARGIN,
            "updatedAt": stored_now(),
        }
        if not await self.repo.place(order_id, placed):
            # Abandoned by the worker (this request outlived the deadline) or deleted with its
            # user: the stock goes back.
            await self._release_quietly(reservation_id, wanted)
            raise ServiceUnavailable(TOO_LATE, retry_after=1)
        doc = {**pending, **placed, "status": PLACED}
        log.info("order placed", extra={"orderId": str(order_id), "userId": user_id})
        return Placement(to_order(await self.finish(doc)), created=True)

    def _earlier(self, earlier: Document) -> Placement:
        if earlier["status"] == PENDING:
            raise Conflict("A checkout with this Idempotency-Key is in progress; try again.")
        return Placement(to_order(earlier), created=False)

    async def _abandon(
        self, order_id: ObjectId, reservation_id: str, items: list[LineItem]
    ) -> None:
        """Give up a pending order of this request: the stock back now, and again by the worker
        after the deadline (``releaseStock``), which then removes the order."""
        try:
            await self.repo.abandon(order_id, RELEASE_STOCK)
        except Exception:
            # The database failed: the order stays pending, and the worker abandons it once
            # past its deadline.
            log.warning("order not abandoned", extra={"orderId": str(order_id)})
        await self._release_quietly(reservation_id, items)

    async def _release_quietly(
        self, reservation_id: str, items: Sequence[LineItem] | None = None
    ) -> bool:
        try:
            await self.stock.release(reservation_id, items)
        except DependencyUnavailable as exc:
            # Given back later: by the worker (an abandoned order), or by product's sweeper (a
            # two-phase reservation).
            log.warning(
                "reservation not released",
                extra={"reservationId": reservation_id, "reason": exc.reason},
            )
            return False
        return True

    # --- the steps after an order is stored ---------------------------------------------------

    async def finish(self, doc: Document) -> Document:
        """Do the order's pending steps; a step whose dependency is down waits for the worker."""
        order_id: ObjectId = doc["_id"]
        current: Document | None = doc
        try:
            if doc["status"] in (PENDING, ABANDONED):
                return await self._finish_unplaced(doc)
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

    async def _finish_unplaced(self, doc: Document) -> Document:
        """A pending order whose checkout is past its deadline is abandoned; an abandoned one's
        stock is given back once no call of its checkout can take any more, then it is removed."""
        if datetime.now(UTC) < _aware(doc["reserveBy"]) + DEADLINE_MARGIN:
            return doc
        order_id: ObjectId = doc["_id"]
        if doc["status"] == PENDING:
            # Under the user's lock: on FerretDB the conditional update is not atomic, and the
            # checkout placing this order holds the lock until it is done.
            async with self.locks.hold(doc["userId"]):
                abandoned = await self.repo.abandon(order_id, RELEASE_STOCK)
            if abandoned is None:
                return doc  # placed (or deleted) meanwhile
            log.warning("checkout abandoned", extra={"orderId": str(order_id)})
            doc = abandoned
        items = [LineItem(product_id=x["productId"], quantity=x["quantity"]) for x in doc["lines"]]
        await self.stock.release(doc["reservationId"], items)
        await self.repo.remove_abandoned(order_id)
        return doc

    async def finish_due(self) -> int:
        """One pass of the worker: settle placed orders with product, many at a time, and finish
        orders whose steps have waited past the grace time."""
        await self.settle_due()
        due = await self.repo.due(datetime.now(UTC) - self.finish_grace)
        for doc in due:
            await self.finish(doc)
        return len(due)

    async def settle_due(self) -> int:
        """Tell product which placed orders' reservations it may forget (past their deadline)."""
        docs = await self.repo.unsettled(datetime.now(UTC))
        if not docs:
            return 0
        try:
            await self.stock.settle([doc["reservationId"] for doc in docs])
        except DependencyUnavailable as exc:
            log.warning("settling postponed", extra={"orders": len(docs), "reason": exc.reason})
            return 0
        await self.repo.settled([doc["_id"] for doc in docs])
        return len(docs)

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
