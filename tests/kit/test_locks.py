"""Document locks across replicas: two KeyedLocks over one database stand for two replicas of a
service, each with its own in-process locks.

Leases are taken only where conditional updates are not atomic, that is on FerretDB, so the lease
tests run on a FerretDB on SQLite of their own (one per module), whatever the session's server is
(mongo-java-server by default, which needs none). The session's server is checked for the other
half: a lease is taken there exactly when ``needs_leases`` says so."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from services.kit import locks as locks_module
from services.kit.errors import ServiceUnavailable
from services.kit.locks import KeyedLocks, needs_leases
from services.local.mongo_server import MongoServer, free_port, start_engine
from tests.infra.engines import require, started

LEASING_ENGINE = "ferretdb-sqlite"


@pytest.fixture(scope="module")
def ferretdb() -> Iterator[MongoServer]:
    with started(LEASING_ENGINE) as server:
        yield server


@pytest.fixture
async def leasing_db(ferretdb: MongoServer, db_prefix: str) -> AsyncIterator[Any]:
    """A database of its own on FerretDB, where the services take leases."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(ferretdb.uri)
    try:
        db = client[f"{db_prefix}_locks"]
        assert await needs_leases(db.locks), "FerretDB must be told apart: it needs leases"
        yield db
    finally:
        await client.close()


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


async def test_two_replicas_take_turns_on_one_document(leasing_db: Any) -> None:
    replicas = [KeyedLocks(leasing_db.locks, "counter") for _ in range(2)]
    assert await _increments(leasing_db, replicas, each=10) == 2 * 4 * 10
    assert await leasing_db.locks.count_documents({}) == 0  # every lease given back


async def test_without_a_shared_lease_two_replicas_lose_updates(leasing_db: Any) -> None:
    """The control: the same load with in-process locks only (what a second replica of a
    service had before) loses updates."""
    replicas = [KeyedLocks() for _ in range(2)]
    assert await _increments(leasing_db, replicas, each=10) < 2 * 4 * 10


async def test_a_lease_left_by_a_dead_holder_expires(leasing_db: Any) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    await leasing_db.locks.insert_one({"_id": "counter:c", "holder": "dead", "expiresAt": past})
    async with KeyedLocks(leasing_db.locks, "counter").hold("c"):
        held = await leasing_db.locks.find_one({"_id": "counter:c"})
        assert held["holder"] != "dead"


async def test_a_lease_held_too_long_is_a_503_with_retry_after(
    leasing_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locks_module, "WAIT_SECONDS", 0.3)
    future = datetime.now(UTC) + timedelta(seconds=60)
    await leasing_db.locks.insert_one({"_id": "counter:c", "holder": "busy", "expiresAt": future})
    with pytest.raises(ServiceUnavailable) as refused:
        async with KeyedLocks(leasing_db.locks, "counter").hold("c"):
            pass
    assert refused.value.headers["Retry-After"] == "1"


async def test_the_sessions_server_gets_a_lease_exactly_when_it_needs_one(db: Any) -> None:
    """On the session's server (mongo-java-server by default, or MONGO_URI's, or
    CHECKOUT_DB_ENGINE's): a held lock is a lease document where conditional updates are not
    atomic (FerretDB), and nothing in the database where they are."""
    leased = await needs_leases(db.locks)
    async with KeyedLocks(db.locks, "counter").hold("c"):
        holding = await db.locks.count_documents({"_id": "counter:c"})
    assert holding == (1 if leased else 0)
    assert await db.locks.count_documents({}) == 0


async def test_a_lease_whose_release_failed_is_given_back_once_the_database_is_back(
    tmp_path: Path,
) -> None:
    """The database goes away while a lease is held: the release fails with the request, and
    the lease is deleted as soon as the database answers again - not left to expire."""
    require(LEASING_ENGINE)
    folder, port = tmp_path / "db", free_port()
    server = start_engine(LEASING_ENGINE, folder, port)
    client: AsyncMongoClient[Any] = AsyncMongoClient(server.uri, serverSelectionTimeoutMS=1000)
    try:
        locks = client["leases"].locks
        assert await needs_leases(locks)
        with pytest.raises(PyMongoError):
            async with KeyedLocks(locks, "counter", lease_seconds=60).hold("c"):
                server.stop()
        server = start_engine(LEASING_ENGINE, folder, port)
        began = time.monotonic()
        while await locks.count_documents({}) and time.monotonic() - began < 10:
            await asyncio.sleep(0.2)
        assert await locks.count_documents({}) == 0
        assert time.monotonic() - began < 5  # not the lease's 60 s
    finally:
        await client.close()
        server.stop()
