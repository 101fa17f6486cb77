"""Cart lines in MongoDB: one document per (userId, productId), enforced by a unique index.

Every write here is a single-document operation that is atomic on MongoDB by itself (an insert
guarded by the unique index, or a conditional update). FerretDB applies conditional updates as
read-then-write, so :class:`services.cart.service.CartService` also serialises a user's writes
with a per-user lock (see ``services/kit/locks.py``).

A deleted user's cart keeps one document: the deletion marker, a line whose ``productId`` is
``DELETED`` (no product id can be: ``services.kit.contracts.ProductId``). It is what
``services.kit.revocation.DeletedUsers`` records for cart, so the read of a cart's lines is also
the check that its user still exists. No read or write here returns or removes it except
:meth:`CartRepository.for_user` (which returns it, for that check).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.kit.contracts import LineItem
from services.kit.mongo import Database, Document

# Applying a removal to a line takes two steps that a concurrent change of the same line (from
# another replica) can slip between; a few tries settle it.
_TRIES = 5


LINE_ORDER = [("userId", ASCENDING), ("addedAt", ASCENDING), ("_id", ASCENDING)]
# The productId of a user's deletion marker: outside ProductId's alphabet.
DELETED = "~deleted"
NOT_MARKER = {"$ne": DELETED}


def deletion_marker(user_id: str) -> Document:
    """The document that records ``user_id``'s deletion among their cart lines."""
    now = datetime.now(UTC)
    return {
        "_id": f"deleted:{user_id}",
        "userId": user_id,
        "productId": DELETED,
        "quantity": 0,
        "addedAt": now,
        "deletedAt": now,
    }


def is_marker(doc: Document) -> bool:
    return bool(doc["productId"] == DELETED)


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
        """The user's lines in the order they were added, and the deletion marker if any."""
        cursor = self.lines.find({"userId": user_id}, sort=LINE_ORDER[1:])
        return [doc async for doc in cursor]

    async def get(self, user_id: str, product_id: str) -> Document | None:
        return await self.lines.find_one({"userId": user_id, "productId": product_id})

    async def insert(
        self, user_id: str, product_id: str, quantity: int, price_cents: int
    ) -> Document | None:
        """A new line; None when the user has one for this product already (written meanwhile).
        The line remembers ``price_cents``, the unit price the shopper saw when adding."""
        now = datetime.now(UTC)
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
        except DuplicateKeyError:
            return None
        return line

    async def grow(self, line: Document, quantity: int, price_cents: int) -> Document | None:
        """``line`` (as read) with ``quantity`` more units, if it still holds what was read: one
        conditional write, so the checks made on the line as read (stock, the line's maximum)
        hold for the line as written. None when it changed meanwhile."""
        grown: Document | None = await self.lines.find_one_and_update(
            {"_id": line["_id"], "quantity": line["quantity"]},
            {
                "$inc": {"quantity": quantity},
                "$set": {"updatedAt": datetime.now(UTC), "addedPriceCents": price_cents},
            },
            return_document=ReturnDocument.AFTER,
        )
        return grown

    async def set_quantity(self, user_id: str, product_id: str, quantity: int) -> Document | None:
        if product_id == DELETED:
            return None
        return await self.lines.find_one_and_update(
            {"userId": user_id, "productId": product_id},
            {"$set": {"quantity": quantity, "updatedAt": datetime.now(UTC)}},
            return_document=ReturnDocument.AFTER,
        )

    async def remove(self, user_id: str, product_id: str) -> bool:
        if product_id == DELETED:
            return False
        result = await self.lines.delete_one({"userId": user_id, "productId": product_id})
        return result.deleted_count == 1

    async def clear(self, user_id: str) -> int:
        """Delete the user's lines (a deletion marker stays)."""
        result = await self.lines.delete_many({"userId": user_id, "productId": NOT_MARKER})
        return result.deleted_count

    async def deleted_at(self, user_id: str) -> datetime | None:
        """When the user's deletion was recorded, or None."""
        marker = await self.lines.find_one({"_id": deletion_marker(user_id)["_id"]})
        return None if marker is None else marker["deletedAt"]

    async def copy_deletions(self, records: list[Document]) -> None:
        """Record the deletions of the older ``deleted_users`` collection as markers (start-up:
        the users deleted before markers existed stay refused)."""
        for record in records:
            marker = deletion_marker(str(record["_id"]))
            marker["addedAt"] = marker["deletedAt"] = record.get("deletedAt", marker["deletedAt"])
            with contextlib.suppress(DuplicateKeyError):
                await self.lines.insert_one(marker)

    async def take_out(self, user_id: str, removal_id: str, item: LineItem) -> None:
        """Take ``item.quantity`` units out of the line, once per ``removal_id``.

        A line holding no more than that is deleted; a larger one (the user added more while the
        order was placed) keeps the rest and is marked with the removal id, so a retried removal
        does not take the units twice.
        """
        if item.product_id == DELETED:
            return
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
