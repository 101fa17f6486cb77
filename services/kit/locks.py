"""Per-document write serialization inside one process.

On MongoDB a conditional update (``find_one_and_update`` with a filter, ``$inc``) is atomic on
its own, across any number of replicas. FerretDB 1.24 on SQLite, the server used by tests and
local mode where no ``mongod`` exists, applies them as read-then-write: measured here, 8 threads
doing 50 ``$inc`` each kept 53 of 400, and 20 concurrent conditional decrements of a stock of 5
let 6 through. Only unique-index inserts are atomic there. So every read-modify-write of one
document also holds this process's lock for that document: correct on MongoDB with any number of
replicas, and correct on FerretDB with one replica per service.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Hashable


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[Hashable, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        async with lock:
            yield
