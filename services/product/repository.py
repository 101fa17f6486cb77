"""Products and stock reservations in MongoDB.

Stock is reserved per product with one conditional update that both checks the stock and marks
the product with the reservation id, so a reservation can never take a unit twice (a retried
call finds the mark) and stock can never go below zero (the filter requires enough of it).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.kit.locks import KeyedLocks, LockTable, needs_leases
from services.kit.mongo import Database, Document, parse_object_id

# Each sort ends with _id (a stable order for pages) and is one index read forwards or backwards:
# "-name" is "name" reversed, ties included, so one index serves both.
SORTS: dict[str, list[tuple[str, int]]] = {
    "name": [("nameKey", ASCENDING), ("_id", ASCENDING)],
    "-name": [("nameKey", DESCENDING), ("_id", DESCENDING)],
    "price": [("priceCents", ASCENDING), ("_id", ASCENDING)],
    "-price": [("priceCents", DESCENDING), ("_id", DESCENDING)],
    "newest": [("createdAt", DESCENDING), ("_id", DESCENDING)],
}
# The catalogue's pages, with and without a category, in every order: an index each.
LIST_INDEXES = [SORTS[key] for key in ("name", "price", "newest")]


class SkuTaken(Exception):
    pass


async def create_indexes(db: Database) -> None:
    await db.products.create_index([("sku", ASCENDING)], unique=True, name="sku_unique")
    for order in LIST_INDEXES:
        await db.products.create_index(order)
        await db.products.create_index([("category", ASCENDING), *order])
    await db.reservations.create_index([("state", ASCENDING), ("updatedAt", ASCENDING)])
    # The products a reservation marked (its release and settling find them by the mark).
    await db.products.create_index([("reservations", ASCENDING)], name="reservation_marks")


class ProductRepository:
    # The in-process locks are shared by every repository in the process (one per product
    # document); the leases, on FerretDB, by every replica (services.kit.locks).
    _stock_lock_table: LockTable = weakref.WeakValueDictionary()

    def __init__(self, db: Database) -> None:
        self.products = db.products
        self.stock_locks = KeyedLocks(db.locks, "stock", table=self._stock_lock_table)

    async def insert(self, fields: dict[str, Any]) -> Document:
        now = datetime.now(UTC)
        doc: Document = {
            "_id": ObjectId(),
            **fields,
            "nameKey": fields["name"].casefold(),
            "createdAt": now,
            "updatedAt": now,
            "reservations": [],
        }
        try:
            await self.products.insert_one(doc)
        except DuplicateKeyError as exc:
            raise SkuTaken(fields["sku"]) from exc
        return doc

    async def upsert_by_sku(self, fields: dict[str, Any]) -> bool:
        """Insert or refresh a catalogue entry by sku; True when new. Stock is set on insert."""
        now = datetime.now(UTC)
        stock = fields.pop("stock", 0)
        result = await self.products.update_one(
            {"sku": fields["sku"]},
            {
                "$set": {**fields, "nameKey": fields["name"].casefold(), "updatedAt": now},
                "$setOnInsert": {"createdAt": now, "stock": stock, "reservations": []},
            },
            upsert=True,
        )
        return result.upserted_id is not None

    async def get(self, product_id: str) -> Document | None:
        oid = parse_object_id(product_id)
        return None if oid is None else await self.products.find_one({"_id": oid})

    async def find(
        self,
        *,
        text: str | None,
        category: str | None,
        ids: list[ObjectId] | None,
        sort: str,
        skip: int,
        limit: int,
    ) -> tuple[list[Document], int]:
        query: dict[str, Any] = {}
        if text:
            pattern = re.escape(text.strip())
            query["$or"] = [
                {"name": {"$regex": pattern, "$options": "i"}},
                {"description": {"$regex": pattern, "$options": "i"}},
            ]
        if category:
            query["category"] = category
        if ids is not None:
            query["_id"] = {"$in": ids}
        cursor = self.products.find(query, sort=SORTS[sort], skip=skip, limit=limit)
        docs = [doc async for doc in cursor]
        if ids is not None and skip == 0 and len(ids) <= limit:
            # A lookup by ids that fits one page (the cart's and the order's): every match is
            # on it, so it is the count too - one command instead of two.
            return docs, len(docs)
        return docs, await self.products.count_documents(query)

    async def categories(self) -> list[str]:
        """The categories that have at least one product (served by the category index)."""
        return sorted(await self.products.distinct("category"))

    async def update(self, product_id: str, fields: dict[str, Any]) -> Document | None:
        oid = parse_object_id(product_id)
        if oid is None:
            return None
        changes = {**fields, "updatedAt": datetime.now(UTC)}
        if "name" in fields:
            changes["nameKey"] = fields["name"].casefold()
        async with self.stock_locks.hold(oid):
            return await self.products.find_one_and_update(
                {"_id": oid}, {"$set": changes}, return_document=ReturnDocument.AFTER
            )

    async def delete(self, product_id: str) -> bool:
        oid = parse_object_id(product_id)
        if oid is None:
            return False
        result = await self.products.delete_one({"_id": oid})
        return result.deleted_count == 1

    async def take_marked(
        self, product_id: ObjectId, quantity: int, reservation_id: str
    ) -> Document | None:
        """Take ``quantity`` units and mark the product with the reservation, in one conditional
        write: the product as written (its name and price are those of the taking), or None when
        it is unknown, short of stock, or marked by this reservation already."""
        async with self.stock_locks.hold(product_id):
            doc: Document | None = await self.products.find_one_and_update(
                {
                    "_id": product_id,
                    "stock": {"$gte": quantity},
                    "reservations": {"$ne": reservation_id},
                },
                {"$inc": {"stock": -quantity}, "$push": {"reservations": reservation_id}},
                return_document=ReturnDocument.AFTER,
            )
            return doc

    async def by_object_id(self, product_id: ObjectId) -> Document | None:
        return await self.products.find_one({"_id": product_id})

    async def take(self, product_id: ObjectId, quantity: int, reservation_id: str) -> bool:
        """Take ``quantity`` units for a reservation, once; True if taken now or already."""
        if await self.take_marked(product_id, quantity, reservation_id) is not None:
            return True
        already = await self.products.count_documents(
            {"_id": product_id, "reservations": reservation_id}
        )
        return already > 0

    async def give_back(self, product_id: ObjectId, quantity: int, reservation_id: str) -> None:
        async with self.stock_locks.hold(product_id):
            await self.products.update_one(
                {"_id": product_id, "reservations": reservation_id},
                {"$inc": {"stock": quantity}, "$pull": {"reservations": reservation_id}},
            )

    async def settle(self, product_id: ObjectId, reservation_id: str) -> None:
        async with self.stock_locks.hold(product_id):
            await self.products.update_one(
                {"_id": product_id}, {"$pull": {"reservations": reservation_id}}
            )

    async def settle_many(self, reservation_ids: Sequence[str]) -> int:
        """Remove the marks of these reservations from every product; the number of products."""
        reservation_ids = list(reservation_ids)
        marked = {"reservations": {"$in": reservation_ids}}
        unmark = {"$pullAll": {"reservations": reservation_ids}}
        if not await needs_leases(self.products):
            result = await self.products.update_many(marked, unmark)
            return result.modified_count
        # FerretDB: its multi-document update is read-then-write too; one product at a time,
        # under the product's lock like every other stock write.
        oids = [doc["_id"] async for doc in self.products.find(marked, projection={"_id": 1})]
        for oid in oids:
            async with self.stock_locks.hold(oid):
                await self.products.update_one({"_id": oid}, unmark)
        return len(oids)


class ReservationRepository:
    def __init__(self, db: Database) -> None:
        self.reservations = db.reservations

    async def create(self, reservation_id: str, items: list[dict[str, Any]]) -> Document | None:
        """Record a new reservation; None if one with this id exists (the caller reloads it)."""
        now = datetime.now(UTC)
        doc: Document = {
            "_id": reservation_id,
            "items": items,
            "state": "pending",
            "createdAt": now,
            "updatedAt": now,
        }
        try:
            await self.reservations.insert_one(doc)
        except DuplicateKeyError:
            return None
        return doc

    async def get(self, reservation_id: str) -> Document | None:
        return await self.reservations.find_one({"_id": reservation_id})

    async def move(self, reservation_id: str, from_states: list[str], to_state: str) -> bool:
        result = await self.reservations.update_one(
            {"_id": reservation_id, "state": {"$in": from_states}},
            {"$set": {"state": to_state, "updatedAt": datetime.now(UTC)}},
        )
        return result.modified_count == 1

    async def stale(self, before: datetime) -> list[Document]:
        cursor = self.reservations.find(
            {"state": {"$in": ["pending", "reserved"]}, "updatedAt": {"$lt": before}}, limit=50
        )
        return [doc async for doc in cursor]
