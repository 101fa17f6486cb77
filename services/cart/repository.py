"""Cart lines in MongoDB: one document per (userId, productId), enforced by a unique index.

Every write here is a single-document operation that is atomic on MongoDB by itself (an insert
guarded by the unique index, or a conditional update). FerretDB applies conditional updates as
read-then-write, so :class:`services.cart.service.CartService` also serialises a user's writes
with a per-user lock (see ``services/kit/locks.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.kit.contracts import LineItem
from services.kit.mongo import Database, Document

# Adding to a line, and applying a removal to one, take two steps that a concurrent change of
# the same line (from another replica) can slip between; a few tries settle it.
_TRIES = 5


class LineFull(Exception):
    """Adding would take the line above the allowed quantity."""


class LineContended(Exception):
    """The line kept changing under an add."""


LINE_ORDER = [("userId", ASCENDING), ("addedAt", ASCENDING), ("_id", ASCENDING)]


async def create_indexes(db: Database) -> None:
    await db.cart_lines.create_index(
        [("userId", ASCENDING), ("productId", ASCENDING)], unique=True, name="user_product_unique"
    )
    # A cart's lines in the order they were added: the read of every cart view and change.
    await db.cart_lines.create_index(LINE_ORDER, name="user_added")


class CartRepository:
    def __init__(self, db: Database) -> None:
        self.lines = db.cart_lines

    async def for_user(self, user_id: str) -> list[Document]:
        cursor = self.lines.find({"userId": user_id}, sort=LINE_ORDER[1:])
        return [doc async for doc in cursor]

    async def get(self, user_id: str, product_id: str) -> Document | None:
        return await self.lines.find_one({"userId": user_id, "productId": product_id})

    async def count(self, user_id: str) -> int:
        return await self.lines.count_documents({"userId": user_id})

    async def add(
        self, user_id: str, product_id: str, quantity: int, max_quantity: int, price_cents: int
    ) -> Document:
        """Create the line, or add ``quantity`` to it (never above ``max_quantity``); the line
        remembers ``price_cents``, the unit price the shopper saw when adding. Returns the line
        as written."""
        now = datetime.now(UTC)
        for _ in range(_TRIES):
            line = {
                "_id": ObjectId(),
                "userId": user_id,
                "productId": product_id,
                "quantity": quantity,
                "addedPriceCents": price_cents,
                "addedAt": now,
                "updatedAt": now,
            }
            try:
                await self.lines.insert_one(line)
                return line
            except DuplicateKeyError:
                pass
            grown: Document | None = await self.lines.find_one_and_update(
                {
                    "userId": user_id,
                    "productId": product_id,
                    "quantity": {"$lte": max_quantity - quantity},
                },
                {
                    "$inc": {"quantity": quantity},
                    "$set": {"updatedAt": now, "addedPriceCents": price_cents},
                },
                return_document=ReturnDocument.AFTER,
            )
            if grown is not None:
                return grown
            if await self.get(user_id, product_id) is not None:
                raise LineFull(product_id)
            # The line was removed between the insert and the update: insert again.
        raise LineContended(product_id)

    async def set_quantity(self, user_id: str, product_id: str, quantity: int) -> Document | None:
        return await self.lines.find_one_and_update(
            {"userId": user_id, "productId": product_id},
            {"$set": {"quantity": quantity, "updatedAt": datetime.now(UTC)}},
            return_document=ReturnDocument.AFTER,
        )

    async def remove(self, user_id: str, product_id: str) -> bool:
        result = await self.lines.delete_one({"userId": user_id, "productId": product_id})
        return result.deleted_count == 1

    async def clear(self, user_id: str) -> int:
        result = await self.lines.delete_many({"userId": user_id})
        return result.deleted_count

    async def take_out(self, user_id: str, removal_id: str, item: LineItem) -> None:
        """Take ``item.quantity`` units out of the line, once per ``removal_id``.

        A line holding no more than that is deleted; a larger one (the user added more while the
        order was placed) keeps the rest and is marked with the removal id, so a retried removal
        does not take the units twice.
        """
        line = {"userId": user_id, "productId": item.product_id, "removals": {"$ne": removal_id}}
        for _ in range(_TRIES):
            deleted = await self.lines.delete_one({**line, "quantity": {"$lte": item.quantity}})
            if deleted.deleted_count:
                return
            reduced = await self.lines.update_one(
                {**line, "quantity": {"$gt": item.quantity}},
                {
                    "$inc": {"quantity": -item.quantity},
                    "$push": {"removals": removal_id},
                    "$set": {"updatedAt": datetime.now(UTC)},
                },
            )
            if reduced.matched_count or await self.lines.count_documents(line, limit=1) == 0:
                return  # done now, done before, or the line is gone
