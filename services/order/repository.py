"""Orders in MongoDB.

A checkout first writes its order as ``pending`` (the items, the reservation id and the deadline
product must take the stock by), then, once product has sold the stock, turns it ``placed`` with
the priced lines, in one conditional update. An order that did not get there is ``abandoned``:
it loses its user id and its checkout key, and the worker gives its stock back and removes it.
``pendingSteps`` lists what is still to be done elsewhere (trim the cart; for orders of earlier
versions, commit the stock), so a step that fails for a while is finished later by a worker
rather than forgotten; ``settleBy`` is when product may forget the reservation's marks (the
worker tells it, many orders at a time). Only placed and cancelled orders are shown to users.
``checkoutKey`` is unique:
``key:<userId>:<Idempotency-Key>`` for a checkout that carried a key, ``order:<orderId>``
otherwise, so a retried checkout can never store a second order (one unique index on a field every
order has works on MongoDB and on FerretDB, which lacks partial indexes).
"""

from __future__ import annotations

from datetime import UTC, datetime

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.kit.mongo import Database, Document

NEWEST_FIRST = [("createdAt", DESCENDING), ("_id", DESCENDING)]
PENDING, PLACED, CANCELLED, ABANDONED = "pending", "placed", "cancelled", "abandoned"
SHOWN = {"$in": [PLACED, CANCELLED]}


class DuplicateCheckout(Exception):
    """An order with this checkout key exists already."""


async def create_indexes(db: Database) -> None:
    await db.orders.create_index(
        [("checkoutKey", ASCENDING)], unique=True, name="checkout_key_unique"
    )
    await db.orders.create_index([("userId", ASCENDING), *NEWEST_FIRST], name="user_newest")
    await db.orders.create_index([("pendingSteps", ASCENDING)], name="pending_steps")
    await db.orders.create_index([("settleBy", ASCENDING)], name="settle_by")


class OrderRepository:
    def __init__(self, db: Database) -> None:
        self.orders = db.orders

    async def insert(self, doc: Document) -> None:
        try:
            await self.orders.insert_one(doc)
        except DuplicateKeyError as exc:
            raise DuplicateCheckout(doc["checkoutKey"]) from exc

    async def get(self, order_id: ObjectId) -> Document | None:
        """A placed or cancelled order."""
        return await self.orders.find_one({"_id": order_id, "status": SHOWN})

    async def by_checkout_key(self, checkout_key: str) -> Document | None:
        return await self.orders.find_one({"checkoutKey": checkout_key})

    async def place(self, order_id: ObjectId, fields: Document) -> bool:
        """Turn a pending order placed with ``fields``; False if it is no longer pending."""
        result = await self.orders.update_one(
            {"_id": order_id, "status": PENDING}, {"$set": {"status": PLACED, **fields}}
        )
        return result.modified_count == 1

    async def abandon(self, order_id: ObjectId, step: str) -> Document | None:
        """Give up a pending order: no user's any more, its key free for a new checkout, ``step``
        (giving its stock back) to do. None if it is not pending."""
        return await self.orders.find_one_and_update(
            {"_id": order_id, "status": PENDING},
            {
                "$set": {
                    "status": ABANDONED,
                    "checkoutKey": f"abandoned:{order_id}",
                    "pendingSteps": [step],
                    "updatedAt": datetime.now(UTC),
                },
                "$unset": {"userId": ""},
            },
            return_document=ReturnDocument.AFTER,
        )

    async def remove_abandoned(self, order_id: ObjectId) -> None:
        await self.orders.delete_one({"_id": order_id, "status": ABANDONED})

    async def unsettled(self, before: datetime, limit: int = 500) -> list[Document]:
        cursor = self.orders.find(
            {"settleBy": {"$lt": before}}, projection={"reservationId": 1}, limit=limit
        )
        return [doc async for doc in cursor]

    async def settled(self, order_ids: list[ObjectId]) -> None:
        await self.orders.update_many({"_id": {"$in": order_ids}}, {"$unset": {"settleBy": ""}})

    async def page_for_user(
        self, user_id: str, skip: int, limit: int
    ) -> tuple[list[Document], int]:
        query = {"userId": user_id, "status": SHOWN}
        total = await self.orders.count_documents(query)
        cursor = self.orders.find(query, sort=NEWEST_FIRST, skip=skip, limit=limit)
        return [doc async for doc in cursor], total

    async def step_done(self, order_id: ObjectId, step: str) -> Document | None:
        return await self.orders.find_one_and_update(
            {"_id": order_id},
            {"$pull": {"pendingSteps": step}, "$set": {"updatedAt": datetime.now(UTC)}},
            return_document=ReturnDocument.AFTER,
        )

    async def postpone(self, order_id: ObjectId) -> Document | None:
        return await self.orders.find_one_and_update(
            {"_id": order_id},
            {"$set": {"updatedAt": datetime.now(UTC)}},
            return_document=ReturnDocument.AFTER,
        )

    async def cancel(self, order_id: ObjectId, reason: str) -> Document | None:
        return await self.orders.find_one_and_update(
            {"_id": order_id},
            {
                "$set": {
                    "status": "cancelled",
                    "cancelReason": reason,
                    "pendingSteps": [],
                    "updatedAt": datetime.now(UTC),
                }
            },
            return_document=ReturnDocument.AFTER,
        )

    async def due(self, untouched_since: datetime, limit: int = 20) -> list[Document]:
        cursor = self.orders.find(
            {"pendingSteps.0": {"$exists": True}, "updatedAt": {"$lt": untouched_since}},
            limit=limit,
        )
        return [doc async for doc in cursor]

    async def delete_for_user(self, user_id: str) -> int:
        result = await self.orders.delete_many({"userId": user_id})
        return result.deleted_count
