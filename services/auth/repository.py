"""Users in MongoDB.

Deleting a user is one atomic write to the user's own document: it becomes a tombstone (its email
freed, its role gone) that lists the services still to be told, so the cascade intent is stored in
the same operation as the deletion and the relay in ``services.auth.cascade`` can deliver it later.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.kit.mongo import Database, Document, parse_object_id

CASCADE_TARGETS = ("cart", "order")


class EmailTaken(Exception):
    pass


async def create_indexes(db: Database) -> None:
    await db.users.create_index([("email", ASCENDING)], unique=True, name="email_unique")
    await db.users.create_index([("cascadePending", ASCENDING)], name="cascade_pending")
    await db.rate_limits.create_index([("expireAt", ASCENDING)], name="expire")


class UserRepository:
    def __init__(self, db: Database) -> None:
        self.users = db.users

    async def insert(self, email: str, password_hash: str, role: str, name: str | None) -> Document:
        doc: Document = {
            "_id": ObjectId(),
            "email": email,
            "passwordHash": password_hash,
            "role": role,
            "name": name,
            "createdAt": datetime.now(UTC),
        }
        try:
            await self.users.insert_one(doc)
        except DuplicateKeyError as exc:
            raise EmailTaken(email) from exc
        return doc

    async def by_email(self, email: str) -> Document | None:
        return await self.users.find_one({"email": email, "deletedAt": None})

    async def by_id(self, user_id: str) -> Document | None:
        oid = parse_object_id(user_id)
        if oid is None:
            return None
        return await self.users.find_one({"_id": oid, "deletedAt": None})

    async def is_active(self, user_id: str) -> bool:
        return await self.by_id(user_id) is not None

    async def set_password_hash(self, user_id: ObjectId, password_hash: str) -> None:
        await self.users.update_one({"_id": user_id}, {"$set": {"passwordHash": password_hash}})

    async def set_role(self, user_id: ObjectId, role: str) -> None:
        await self.users.update_one({"_id": user_id}, {"$set": {"role": role}})

    async def mark_deleted(self, user_id: str) -> Document | None:
        """Tombstone the user and record the cascade in one write; None if already gone."""
        oid = parse_object_id(user_id)
        if oid is None:
            return None
        now = datetime.now(UTC)
        return await self.users.find_one_and_update(
            {"_id": oid, "deletedAt": None},
            {
                "$set": {
                    "deletedAt": now,
                    "email": f"deleted:{oid}",
                    "passwordHash": None,
                    "cascadePending": list(CASCADE_TARGETS),
                    "cascadeNextAt": now,
                    "cascadeAttempts": 0,
                }
            },
            return_document=ReturnDocument.AFTER,
        )

    async def due_cascades(self, now: datetime, limit: int = 20) -> list[Document]:
        cursor = self.users.find(
            {"cascadePending.0": {"$exists": True}, "cascadeNextAt": {"$lte": now}},
            limit=limit,
        )
        return [doc async for doc in cursor]

    async def acknowledge(self, user_id: ObjectId, target: str) -> None:
        await self.users.update_one({"_id": user_id}, {"$pull": {"cascadePending": target}})

    async def postpone(self, user_id: ObjectId, next_at: datetime, attempts: int) -> None:
        update: dict[str, Any] = {"$set": {"cascadeNextAt": next_at, "cascadeAttempts": attempts}}
        await self.users.update_one({"_id": user_id}, update)

    async def pending_cascades(self) -> int:
        return await self.users.count_documents({"cascadePending.0": {"$exists": True}})
