"""Per-document write serialization: inside one process, and across replicas where needed.

On MongoDB a conditional update (``find_one_and_update`` with a filter, ``$inc``) is atomic on
its own, across any number of replicas, and so it is on mongo-java-server (the default server of
local mode and the tests). FerretDB 1.24, the server of the offline cluster (and of local mode
under ``CHECKOUT_DB_ENGINE=ferretdb-*``), applies them as read-then-write: measured on SQLite, 8
threads doing 50 ``$inc`` each kept 53 of 400, and 20 concurrent conditional decrements of a
stock of 5 let 6 through. Only unique-index inserts are atomic there.

So every read-modify-write of one document holds a lock for that document:

- this process's own ``asyncio.Lock`` per key, always (cheap, and it keeps one replica's
  requests for one document in line);
- on FerretDB (told by ``buildInfo``, once per client), also a *lease*: a document
  ``{_id: "<scope>:<key>"}`` in the service's ``locks`` collection, taken by inserting it (the
  atomic operation FerretDB has) and given back by deleting it, so the replicas of a service
  take turns. A lease names its holder and expires (``LEASE_SECONDS``, longer where service
  calls are guarded too): one left by a process that died is removed by the next one that
  wants it; one whose release failed because the database went away is given back as soon as
  the database answers again. A request waits at most ``WAIT_SECONDS`` for a lease, then gets
  a 503 with Retry-After. On MongoDB no lease is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Hashable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError, PyMongoError

from services.kit.errors import ServiceUnavailable

# A lease outlives the operation it guards (a few database commands, each bounded by the
# database timeout); KeyedLocks that guard service calls as well ask for longer ones.
LEASE_SECONDS = 10.0
# How long a request waits for a lease before it is answered 503 with Retry-After: less than a
# calling service's HTTP timeout, so the caller gets the 503 (and may retry), not a timeout.
WAIT_SECONDS = 2.0
# Leases whose release failed (the database went away mid-request), given back once it is back.
_releasing: set[asyncio.Task[None]] = set()

LockTable = weakref.WeakValueDictionary[Hashable, asyncio.Lock]

_servers_without_atomic_updates: dict[int, bool] = {}


async def needs_leases(collection: Any) -> bool:
    """True when the collection's server applies conditional updates non-atomically (FerretDB)."""
    client = collection.database.client
    known = _servers_without_atomic_updates.get(id(client))
    if known is None:
        info = await client.admin.command("buildInfo")
        known = _servers_without_atomic_updates[id(client)] = "ferretdbVersion" in info
    return known


async def _release_later(collection: Any, name: str, holder: str, until: float) -> None:
    while time.monotonic() < until:
        await asyncio.sleep(0.5)
        with contextlib.suppress(PyMongoError):
            await collection.delete_one({"_id": name, "holder": holder})
            return


@contextlib.asynccontextmanager
async def lease(collection: Any, name: str, seconds: float = LEASE_SECONDS) -> AsyncIterator[None]:
    """Hold the lease ``name`` in ``collection`` (see the module's docstring)."""
    holder = uuid.uuid4().hex
    deadline = time.monotonic() + WAIT_SECONDS
    delay = 0.002
    while True:
        now = datetime.now(UTC)
        try:
            await collection.insert_one(
                {"_id": name, "holder": holder, "expiresAt": now + timedelta(seconds=seconds)}
            )
            break
        except DuplicateKeyError:
            # Held. A lease past its time was left by a holder that died: remove it.
            await collection.delete_one({"_id": name, "expiresAt": {"$lt": now}})
        if time.monotonic() > deadline:
            raise ServiceUnavailable("The data is busy; try again shortly.", retry_after=1)
        await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not secrets
        delay = min(delay * 2, 0.05)
    try:
        yield
    finally:
        try:
            await collection.delete_one({"_id": name, "holder": holder})
        except PyMongoError:
            # Not left to expire: the others would wait for it long after the database is back.
            task = asyncio.create_task(
                _release_later(collection, name, holder, time.monotonic() + seconds)
            )
            _releasing.add(task)
            task.add_done_callback(_releasing.discard)
            raise


class KeyedLocks:
    """``async with locks.hold(key)``: one holder per key in this process, and, when
    ``shared`` (a collection of the service's database) is on FerretDB, across processes."""

    def __init__(
        self,
        shared: Any = None,
        scope: str = "",
        *,
        table: LockTable | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        # ``table``: the in-process locks, when several instances must share them.
        self._locks: LockTable = weakref.WeakValueDictionary() if table is None else table
        self.shared = shared
        self.scope = scope
        self.lease_seconds = lease_seconds

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        async with lock:
            if self.shared is not None and await needs_leases(self.shared):
                async with lease(self.shared, f"{self.scope}:{key}", self.lease_seconds):
                    yield
            else:
                yield
