"""Document locks across replicas, on the real MongoDB-protocol server of the tests (FerretDB here
unless ``mongod`` is installed): two KeyedLocks over one database stand for two replicas of a
service, each with its own in-process locks."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from services.kit import locks as locks_module
from services.kit.errors import ServiceUnavailable
from services.kit.locks import KeyedLocks, needs_leases
from services.local.mongo_server import find_or_start_mongo, free_port


async def _increments(db: Any, replicas: list[KeyedLocks], each: int) -> int:
    """Read-modify-write of one counter, ``each`` times from every replica at once."""
    await db.counters.insert_one({"_id": "c", "n": 0})

    async def bump(locks: KeyedLocks) -> None:
        for _ in range(each):
            async with locks.hold("c"):
                doc = await db.counters.find_one({"_id": "c"})
                await asyncio.sleep(0)  # another request's turn, as under load
                await db.counters.update_one({"_id": "c"}, {"$set": {"n": doc["n"] + 1}})

    await asyncio.gather(*(bump(locks) for locks in replicas for _ in range(4)))
    doc = await db.counters.find_one({"_id": "c"})
    return int(doc["n"])


async def test_two_replicas_take_turns_on_one_document(db: Any) -> None:
    if not await needs_leases(db.locks):
        # Without a lease the replicas do not take turns (by design: the services' writes
        # are atomic conditional updates there), so this read-then-write loses updates.
        pytest.skip("mongod, mongo-java-server: conditional updates are atomic, no lease is taken")
    replicas = [KeyedLocks(db.locks, "counter") for _ in range(2)]
    assert await _increments(db, replicas, each=10) == 2 * 4 * 10
    assert await db.locks.count_documents({}) == 0  # every lease given back


async def test_without_a_shared_lease_two_replicas_lose_updates(db: Any) -> None:
    """The control: the same load with in-process locks only (what a second replica of a
    service had before) loses updates - unless the server has atomic updates anyway."""
    if not await needs_leases(db.locks):
        pytest.skip("mongod: conditional updates are atomic, no lease is taken")
    replicas = [KeyedLocks() for _ in range(2)]
    assert await _increments(db, replicas, each=10) < 2 * 4 * 10


async def test_a_lease_left_by_a_dead_holder_expires(db: Any) -> None:
    if not await needs_leases(db.locks):
        pytest.skip("mongod: no lease is taken")
    past = datetime.now(UTC) - timedelta(seconds=1)
    await db.locks.insert_one({"_id": "counter:c", "holder": "dead", "expiresAt": past})
    async with KeyedLocks(db.locks, "counter").hold("c"):
        held = await db.locks.find_one({"_id": "counter:c"})
        assert held["holder"] != "dead"


async def test_a_lease_held_too_long_is_a_503_with_retry_after(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not await needs_leases(db.locks):
        pytest.skip("mongod: no lease is taken")
    monkeypatch.setattr(locks_module, "WAIT_SECONDS", 0.3)
    future = datetime.now(UTC) + timedelta(seconds=60)
    await db.locks.insert_one({"_id": "counter:c", "holder": "busy", "expiresAt": future})
    with pytest.raises(ServiceUnavailable) as refused:
        async with KeyedLocks(db.locks, "counter").hold("c"):
            pass
    assert refused.value.headers["Retry-After"] == "1"


async def test_a_lease_whose_release_failed_is_given_back_once_the_database_is_back(
    tmp_path: Path,
) -> None:
    """The database goes away while a lease is held: the release fails with the request, and
    the lease is deleted as soon as the database answers again - not left to expire."""
    folder, port = tmp_path / "db", free_port()
    server = find_or_start_mongo(folder, port)
    if server.kind == "external":
        server.stop()
        pytest.skip("MONGO_URI names an external server, which this test cannot stop")
    client: AsyncMongoClient[Any] = AsyncMongoClient(server.uri, serverSelectionTimeoutMS=1000)
    try:
        locks = client["leases"].locks
        if not await needs_leases(locks):
            pytest.skip("mongod: no lease is taken")
        with pytest.raises(PyMongoError):
            async with KeyedLocks(locks, "counter", lease_seconds=60).hold("c"):
                server.stop()
        server = find_or_start_mongo(folder, port)
        began = time.monotonic()
        while await locks.count_documents({}) and time.monotonic() - began < 10:
            await asyncio.sleep(0.2)
        assert await locks.count_documents({}) == 0
        assert time.monotonic() - began < 5  # not the lease's 60 s
    finally:
        await client.close()
        server.stop()
