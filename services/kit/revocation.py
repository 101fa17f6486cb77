"""Users deleted while their tokens are still unexpired.

Tokens are verified locally, so a service learns that a user is gone only when auth's deletion
cascade reaches it. The receiving service records the user id here first, and the app's
``is_revoked`` check (see :func:`services.kit.security.authenticate`) refuses that user's tokens
from then on. User ids are never reused, so an entry never needs to expire.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from litestar.datastructures import State
from pymongo.errors import DuplicateKeyError

from services.kit.mongo import Database
from services.kit.tokens import Principal


class DeletedUsers:
    def __init__(self, db: Database) -> None:
        self.users = db.deleted_users

    async def record(self, user_id: str) -> None:
        """Remember ``user_id`` as deleted; recording it twice is a no-op."""
        with contextlib.suppress(DuplicateKeyError):
            await self.users.insert_one({"_id": user_id, "deletedAt": datetime.now(UTC)})

    async def contains(self, user_id: str) -> bool:
        return await self.users.count_documents({"_id": user_id}, limit=1) > 0


async def is_user_deleted(state: State, principal: Principal) -> bool:
    """The ``is_revoked`` check for services that learn of deletions through the cascade."""
    return await DeletedUsers(state.db).contains(principal.user_id)
