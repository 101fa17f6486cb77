"""Orders in MongoDB.

An order is written once, complete, after its stock is reserved; ``pendingSteps`` lists what is
still to be done for it elsewhere (commit the stock in product, trim the cart), so a step that
fails for a while is finished later by a worker rather than forgotten. ``checkoutKey`` is unique:
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


class DuplicateCheckout(Exception):
    """An order with this checkout key exists already."""


async def create_indexes(db: Database) -> None:
    await db.orders.create_index(
        [("checkoutKey", ASCENDING)], unique=True, name="checkout_key_unique"
    )
    await db.orders.create_index([("userId", ASCENDING), *NEWEST_FIRST], name="user_newest")
    await db.orders.create_index([("pendingSteps", ASCENDING)], name="pending_steps")


class OrderRepository:
    def __init__(self, db: Database) -> None:
        self.orders = db.orders

    async def insert(self, doc: Document) -> None:
        try:
            await self.orders.insert_one(doc)
        except DuplicateKeyError as exc:
            raise DuplicateCheckout(doc["checkoutKey"]) from exc

    async def get(self, order_id: ObjectId) -> Document | None:
        return await self.orders.find_one({"_id": order_id})

    async def by_checkout_key(self, checkout_key: str) -> Document | None:
        return await self.orders.find_one({"checkoutKey": checkout_key})

    async def page_for_user(
        self, user_id: str, skip: int, limit: int
    ) -> tuple[list[Document], int]:
        query = {"userId": user_id}
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
