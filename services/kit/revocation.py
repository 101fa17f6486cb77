"""Users deleted while their tokens are still unexpired.

Tokens are verified locally, so a service learns that a user is gone only when auth's deletion
cascade reaches it. The receiving service records the user id here first, and the app's
``is_revoked`` check (see :func:`services.kit.security.authenticate`) refuses that user's tokens
from then on. User ids are never reused, so an entry never needs to expire.

By default the records are ``{_id: <user id>, deletedAt}`` in the service's ``deleted_users``
collection. A service may keep them elsewhere (``collection`` and ``marker``): cart keeps each as
a marker line among the user's cart lines, so the one read of the lines that a cart write makes
anyway is also its deletion check.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from litestar.datastructures import State
from pymongo.errors import DuplicateKeyError

from services.kit.mongo import Database, Document
from services.kit.security import subject_deleted
from services.kit.tokens import Principal

# How long a "not deleted" answer is believed by the per-request token check: the longest a
# token of a user whose deletion reached another replica is still accepted here. Writes that
# must not outlive a deletion (a cart line, an order) check again, uncached, under their lock.
ALIVE_TTL_SECONDS = 1.0
MAX_REMEMBERED = 10_000


def deletion_record(user_id: str) -> Document:
    return {"_id": user_id, "deletedAt": datetime.now(UTC)}


class DeletedUsers:
    def __init__(
        self,
        db: Database,
        *,
        collection: str = "deleted_users",
        marker: Callable[[str], Document] = deletion_record,
    ) -> None:
        # ``marker(user_id)``: the document recording the deletion; its ``_id`` is looked up.
        self.users = db[collection]
        self.marker = marker
        self._deleted: OrderedDict[str, None] = OrderedDict()
        self._alive: OrderedDict[str, float] = OrderedDict()

    async def record(self, user_id: str) -> None:
        """Remember ``user_id`` as deleted; recording it twice is a no-op."""
        with contextlib.suppress(DuplicateKeyError):
            await self.users.insert_one(self.marker(user_id))
        self.remember_deleted(user_id)

    async def contains(self, user_id: str) -> bool:
        """Whether ``user_id`` was deleted, read from the database now."""
        key = self.marker(user_id)["_id"]
        found = await self.users.count_documents({"_id": key}, limit=1) > 0
        if found:
            self.remember_deleted(user_id)
        return found

    async def refuse_if_deleted(self, user_id: str) -> None:
        """Refuse (401, logged as the token check does) when ``user_id`` was deleted, read from
        the database now unless already known deleted: the check a write makes under its lock,
        so that a deletion recorded before the lock was taken wins."""
        if user_id in self._deleted or await self.contains(user_id):
            raise subject_deleted(user_id)

    async def recently_contains(self, user_id: str) -> bool:
        """The same answer, from memory when it may be: a deleted user stays deleted (ids are
        never reused), a user found not deleted is believed for ``ALIVE_TTL_SECONDS``."""
        if user_id in self._deleted:
            return True
        checked = self._alive.get(user_id)
        if checked is not None and time.monotonic() - checked < ALIVE_TTL_SECONDS:
            return False
        found = await self.contains(user_id)
        if not found:
            self._alive[user_id] = time.monotonic()
            self._alive.move_to_end(user_id)
            while len(self._alive) > MAX_REMEMBERED:
                self._alive.popitem(last=False)
        return found

    def known_deleted(self, user_id: str) -> bool:
        return user_id in self._deleted

    def remember_deleted(self, user_id: str) -> None:
        """Note ``user_id`` as deleted (a caller that read its marker itself)."""
        self._alive.pop(user_id, None)
        self._deleted[user_id] = None
        while len(self._deleted) > MAX_REMEMBERED:
            self._deleted.popitem(last=False)


async def is_user_deleted(state: State, principal: Principal) -> bool:
    """The ``is_revoked`` check for services that learn of deletions through the cascade (the
    app's one ``DeletedUsers``, ``state.deleted_users``, remembers its answers briefly)."""
    users: DeletedUsers | None = state.get("deleted_users")
    if users is None:
        users = state.deleted_users = DeletedUsers(state.db)
    return await users.recently_contains(principal.user_id)
