"""Cart logic: adding, viewing, changing and removing lines, and the internal calls of the
order service and of auth's deletion cascade."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from services.cart.clients import ProductCatalogue, ProductInfo
from services.cart.repository import CartRepository, deletion_marker, is_marker
from services.cart.schemas import Cart, CartItemCreate, CartLine
from services.kit.contracts import MAX_LINE_QUANTITY, MAX_LINES, CartContents, CartRemoval, LineItem
from services.kit.errors import Conflict, NotFound
from services.kit.locks import KeyedLocks
from services.kit.mongo import Database, Document
from services.kit.revocation import DeletedUsers
from services.kit.security import subject_deleted

log = logging.getLogger(__name__)

# A write whose line changed between its read and its write (on another replica) reads again.
_TRIES = 3


def to_line(doc: Document, product: ProductInfo | None) -> CartLine:
    quantity: int = doc["quantity"]
    if product is None:
        return CartLine(
            product_id=doc["productId"],
            quantity=quantity,
            available=False,
            in_stock=False,
            name=None,
            unit_price_cents=None,
            currency=None,
            line_total_cents=None,
        )
    return CartLine(
        product_id=doc["productId"],
        quantity=quantity,
        available=True,
        in_stock=product.stock >= quantity,
        name=product.name,
        unit_price_cents=product.price_cents,
        currency=product.currency,
        line_total_cents=product.price_cents * quantity,
        added_unit_price_cents=doc.get("addedPriceCents"),
    )


def to_cart(user_id: str, docs: Sequence[Document], products: dict[str, ProductInfo]) -> Cart:
    lines = [to_line(doc, products.get(doc["productId"])) for doc in docs]
    priced = [line for line in lines if line.available]
    currencies = {line.currency for line in priced}
    single = len(currencies) <= 1
    return Cart(
        user_id=user_id,
        lines=lines,
        item_count=sum(line.quantity for line in lines),
        total_cents=sum(line.line_total_cents or 0 for line in priced) if single else None,
        currency=next(iter(currencies)) if len(currencies) == 1 else None,
    )


def with_line(docs: Sequence[Document], line: Document) -> list[Document]:
    """``docs`` (a cart's lines in order) with ``line`` in its place, or added at the end."""
    replaced = [line if doc["productId"] == line["productId"] else doc for doc in docs]
    if not any(doc["productId"] == line["productId"] for doc in docs):
        replaced.append(line)
    return replaced


def out_of_stock(product: ProductInfo, wanted: int) -> Conflict:
    return Conflict(
        f"Not enough stock for {product.name}: {product.stock} left, {wanted} wanted.",
        extra={
            "outOfStock": [
                {"productId": product.id, "name": product.name, "available": product.stock}
            ]
        },
    )


class CartService:
    """The cart's logic. A view, an add and a change each read the user's lines once, and that
    read is also their deletion check (a deleted user's cart holds the deletion marker,
    services/cart/repository.py); the token check leaves it to them. An add is then one call to
    product (existence, stock and price of the cart's products, fresh) and one write."""

    def __init__(
        self,
        db: Database,
        catalogue: ProductCatalogue,
        deleted: DeletedUsers | None = None,
        *,
        deletion_settle_seconds: float = 20.0,
    ) -> None:
        self.repo = CartRepository(db)
        self.deleted = deleted or cart_deletions(db)
        self.catalogue = catalogue
        self.deletion_settle = timedelta(seconds=deletion_settle_seconds)
        # One user's cart writes run one at a time in this process: checks (line count, stock)
        # then see the writes before them, and FerretDB's non-atomic updates stay correct.
        self.locks = KeyedLocks(db.locks, "cart")

    async def lines_of(self, user_id: str) -> list[Document]:
        """The user's lines, read now; refused (401) when the user was deleted."""
        if self.deleted.known_deleted(user_id):
            raise subject_deleted(user_id)
        docs = await self.repo.for_user(user_id)
        if any(is_marker(doc) for doc in docs):
            self.deleted.remember_deleted(user_id)
            raise subject_deleted(user_id)
        return docs

    async def view(self, user_id: str) -> Cart:
        docs = await self.lines_of(user_id)
        products = await self.catalogue.for_display({doc["productId"] for doc in docs})
        return to_cart(user_id, docs, products)

    async def add(self, user_id: str, item: CartItemCreate) -> Cart:
        async with self.locks.hold(user_id):
            for _ in range(_TRIES):
                # Under the lock: a deletion recorded before the lock was taken wins.
                docs = await self.lines_of(user_id)
                existing = next((d for d in docs if d["productId"] == item.product_id), None)
                if existing is None and len(docs) >= MAX_LINES:
                    raise Conflict(f"A cart holds at most {MAX_LINES} different products.")
                have = existing["quantity"] if existing else 0
                if have + item.quantity > MAX_LINE_QUANTITY:
                    raise Conflict(f"A cart holds at most {MAX_LINE_QUANTITY} of one product.")
                products = await self.catalogue.lookup(
                    {doc["productId"] for doc in docs} | {item.product_id}
                )
                product = products.get(item.product_id)
                if product is None:
                    raise NotFound(f"No product with id {item.product_id!r}.")
                if product.stock < have + item.quantity:
                    raise out_of_stock(product, have + item.quantity)
                if existing is None:
                    line = await self.repo.insert(
                        user_id, item.product_id, item.quantity, product.price_cents
                    )
                else:
                    line = await self.repo.grow(existing, item.quantity, product.price_cents)
                if line is None:
                    continue  # the line changed since it was read (another replica): again
                log.info(
                    "cart line added",
                    extra={"userId": user_id, "productId": item.product_id, "qty": item.quantity},
                )
                # The lines read above with this one as written, instead of reading them all
                # again (the answer is the cart as this request saw and changed it; a line
                # another replica wrote meanwhile shows on the next view).
                return to_cart(user_id, with_line(docs, line), products)
            raise Conflict("The cart changed during the update; try again.")

    async def set_quantity(self, user_id: str, product_id: str, quantity: int) -> Cart:
        async with self.locks.hold(user_id):
            docs = await self.lines_of(user_id)
            if not any(doc["productId"] == product_id for doc in docs):
                raise NotFound(f"Product {product_id!r} is not in the cart.")
            products = await self.catalogue.lookup({doc["productId"] for doc in docs})
            product = products.get(product_id)
            if product is None:
                raise NotFound(f"No product with id {product_id!r}.")
            if product.stock < quantity:
                raise out_of_stock(product, quantity)
            line = await self.repo.set_quantity(user_id, product_id, quantity)
            if line is None:
                raise NotFound(f"Product {product_id!r} is not in the cart.")
            return to_cart(user_id, with_line(docs, line), products)

    async def remove(self, user_id: str, product_id: str) -> None:
        async with self.locks.hold(user_id):
            if not await self.repo.remove(user_id, product_id):
                raise NotFound(f"Product {product_id!r} is not in the cart.")

    async def clear(self, user_id: str) -> None:
        async with self.locks.hold(user_id):
            await self.repo.clear(user_id)

    # --- internal: the order service and the deletion cascade ---------------------------------

    async def contents(self, user_id: str) -> CartContents:
        docs = await self.repo.for_user(user_id)
        return CartContents(
            user_id=user_id,
            lines=[
                LineItem(product_id=d["productId"], quantity=d["quantity"])
                for d in docs
                if not is_marker(d)
            ],
        )

    async def take_out(self, user_id: str, removal: CartRemoval) -> None:
        async with self.locks.hold(user_id):
            for item in removal.lines:
                await self.repo.take_out(user_id, removal.removal_id, item)
        log.info("ordered lines removed", extra={"userId": user_id, "removal": removal.removal_id})

    async def delete_user(self, user_id: str) -> bool:
        """The deletion cascade: record the deletion, then delete the lines. True once the
        deletion is settled: ``deletion_settle_seconds`` after it was recorded, every write
        that read the lines before the marker existed (on another replica, which this
        process's lock does not hold back) has ended, and this clear came after it. Before
        that the caller is to come back (auth's cascade does), so a line such a write added
        after the first clear is deleted by a later one."""
        # Tokens are refused first, so nothing can be added back after the lines are gone.
        await self.deleted.record(user_id)
        async with self.locks.hold(user_id):
            removed = await self.repo.clear(user_id)
        deleted_at = await self.repo.deleted_at(user_id)
        settled = deleted_at is None or datetime.now(UTC) - deleted_at >= self.deletion_settle
        log.info(
            "user's cart deleted", extra={"userId": user_id, "lines": removed, "settled": settled}
        )
        return settled


def cart_deletions(db: Database) -> DeletedUsers:
    """Cart's record of deleted users: the deletion markers among the cart lines."""
    return DeletedUsers(db, collection="cart_lines", marker=deletion_marker)
