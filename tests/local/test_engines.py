"""Every database engine local mode can start (``CHECKOUT_DB_ENGINE``,
services/local/mongo_server.py) starts, answers a race of conditional decrements correctly, keeps
its data across a restart where it has files, and stops with all of its processes.

An engine this machine cannot run (no PostgreSQL, no Java or Maven, no Go) is skipped, saying
why; under ``CI=true``, where .ci/run installs them, it fails instead (tests/infra/engines.py)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient

from services.kit.locks import KeyedLocks, needs_leases
from services.local import mongo_server
from services.local.mongo_server import (
    DEFAULT_ENGINE,
    ENGINE_VARIABLE,
    ENGINES,
    FALLBACK_ENGINE,
    EngineError,
    MongoServer,
    default_engine,
    find_or_start_mongo,
    start_engine,
)
from services.local.processes import alive, process_tree
from tests.infra.engines import require, started

STARTABLE = ["ferretdb-sqlite", "ferretdb-postgres", "java-memory", "java-h2"]
WITH_FILES = ["ferretdb-sqlite", "ferretdb-postgres", "java-h2"]


@pytest.fixture
def no_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONGO_URI", raising=False)
    monkeypatch.delenv(ENGINE_VARIABLE, raising=False)


@pytest.fixture(params=STARTABLE)
def server(request: pytest.FixtureRequest) -> Iterator[MongoServer]:
    with started(request.param) as server:
        yield server


async def decrement_race(uri: str, stock: int, takers: int) -> tuple[int, int]:
    """``takers`` clients at once each take one unit with a conditional decrement, the way
    product's ``take`` does (under the document's lock, which holds a lease where the server
    needs one): (units taken, stock left)."""
    clients: list[AsyncMongoClient[Any]] = [AsyncMongoClient(uri) for _ in range(takers)]
    try:
        db = clients[0].race
        await db.products.delete_many({})
        await db.locks.delete_many({})
        await db.products.insert_one({"_id": "p", "stock": stock})

        async def take(client: AsyncMongoClient[Any]) -> bool:
            # One KeyedLocks per client: each stands for a replica of its own.
            locks = KeyedLocks(client.race.locks, "stock")
            async with locks.hold("p"):
                taken = await client.race.products.find_one_and_update(
                    {"_id": "p", "stock": {"$gte": 1}}, {"$inc": {"stock": -1}}
                )
            return taken is not None

        results = await asyncio.gather(*(take(c) for c in clients))
        doc = await db.products.find_one({"_id": "p"})
        assert doc is not None
        return sum(results), int(doc["stock"])
    finally:
        await asyncio.gather(*(c.close() for c in clients))


def test_each_engine_starts_answers_a_decrement_race_and_stops(server: MongoServer) -> None:
    assert server.uri.startswith("mongodb://127.0.0.1:")
    assert server.engine in ENGINES
    taken, left = asyncio.run(decrement_race(server.uri, stock=5, takers=20))
    assert (taken, left) == (5, 0)
    tree = process_tree(server.pids)
    assert all(alive(pid) for pid in tree)
    workdir = server.workdir
    assert workdir is not None and workdir.exists()
    server.stop()
    assert not any(alive(pid) for pid in tree), "a process of the engine outlived stop()"
    assert not workdir.exists()


async def _raw_decrements(uri: str) -> int:
    clients: list[AsyncMongoClient[Any]] = [AsyncMongoClient(uri) for _ in range(20)]
    try:
        coll = clients[0].raw.stock
        await coll.delete_many({})
        await coll.insert_one({"_id": "p", "stock": 5})

        async def take(client: AsyncMongoClient[Any]) -> bool:
            got = await client.raw.stock.find_one_and_update(
                {"_id": "p", "stock": {"$gte": 1}}, {"$inc": {"stock": -1}}
            )
            return got is not None

        if await needs_leases(coll):
            pytest.skip("FerretDB: conditional updates are read-then-write; the services lease")
        return sum(await asyncio.gather(*(take(c) for c in clients)))
    finally:
        await asyncio.gather(*(c.close() for c in clients))


def test_engines_without_leases_are_atomic_on_their_own(server: MongoServer) -> None:
    """Where the services take no lease (no ``ferretdbVersion`` in buildInfo), the engine's own
    conditional update must be atomic: no lock, 20 racers, exactly 5 units."""
    assert asyncio.run(_raw_decrements(server.uri)) == 5


@pytest.mark.parametrize("engine", WITH_FILES)
def test_an_engine_with_files_keeps_its_data_across_a_restart(engine: str, tmp_path: Path) -> None:
    require(engine)
    # Not pytest's tmp_path itself: it is private to root, and PostgreSQL runs as its own user.
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"engine-restart-{tmp_path.name}"
    workdir.mkdir(mode=0o755)
    try:
        first = start_engine(engine, workdir / "db")
        try:
            with MongoClient[dict[str, Any]](first.uri) as client:
                client.keep.docs.insert_one({"_id": "kept", "n": 1})
        finally:
            first.stop()
        assert (workdir / "db").exists()  # a given work folder is the caller's: kept
        second = start_engine(engine, workdir / "db")
        try:
            with MongoClient[dict[str, Any]](second.uri) as client:
                assert client.keep.docs.find_one({"_id": "kept"}) == {"_id": "kept", "n": 1}
        finally:
            second.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_bad_engine_name_is_refused_naming_the_variable_and_the_values(
    no_uri: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENGINE_VARIABLE, "mongo-in-a-teacup")
    with pytest.raises(EngineError) as refused:
        find_or_start_mongo()
    message = str(refused.value)
    assert ENGINE_VARIABLE in message and "mongo-in-a-teacup" in message
    assert all(name in message for name in ENGINES)
    with pytest.raises(EngineError, match=ENGINE_VARIABLE):
        find_or_start_mongo(engine="nope")


def test_mongo_uri_wins_over_the_engine_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGO_URI", "mongodb://127.0.0.1:1/")
    monkeypatch.setenv(ENGINE_VARIABLE, "java-memory")
    server = find_or_start_mongo()
    assert (server.kind, server.uri, server.process) == ("external", "mongodb://127.0.0.1:1/", None)


def test_the_variable_picks_the_engine(no_uri: None, monkeypatch: pytest.MonkeyPatch) -> None:
    require("java-memory")
    monkeypatch.setenv(ENGINE_VARIABLE, "java-memory")
    server = find_or_start_mongo()
    try:
        assert (server.engine, server.kind) == ("java-memory", "mongo-java-server")
        with MongoClient[dict[str, Any]](server.uri) as client:
            assert "ferretdbVersion" not in client.admin.command("buildInfo")
    finally:
        server.stop()


def test_the_default_engine_is_mongo_java_server_on_h2(no_uri: None) -> None:
    if shutil.which("mongod"):
        pytest.skip("mongod is on PATH, and comes before the default engine")
    require(DEFAULT_ENGINE)
    server = find_or_start_mongo()
    try:
        assert (server.engine, server.kind) == ("java-h2", "mongo-java-server")
        with MongoClient[dict[str, Any]](server.uri) as client:
            assert "ferretdbVersion" not in client.admin.command("buildInfo")  # no leases
    finally:
        server.stop()


@pytest.fixture
def no_java(no_uri: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This machine as one without Java (nor mongod), for the default engine's choice."""
    real_which = shutil.which
    monkeypatch.setattr(mongo_server, "java_binary", lambda: None)
    monkeypatch.setattr(
        mongo_server.shutil, "which", lambda name: None if name == "mongod" else real_which(name)
    )
    mongo_server._default_engine_problem.cache_clear()
    yield
    mongo_server._default_engine_problem.cache_clear()


def test_without_java_the_default_falls_back_to_ferretdb_saying_why(
    no_java: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require(FALLBACK_ENGINE)
    monkeypatch.delenv("CI", raising=False)
    assert default_engine() == FALLBACK_ENGINE == "ferretdb-sqlite"
    said = capsys.readouterr().err
    assert "java-h2" in said and "no java on PATH" in said
    assert "apt-get install default-jdk-headless maven" in said


def test_without_java_under_ci_the_default_engine_fails_loudly(
    no_java: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(EngineError, match=r"java-h2.*no java on PATH.*default-jdk-headless"):
        find_or_start_mongo()


def test_bench_engines_prints_its_line_for_an_engine() -> None:
    """A smoke of ``make bench-engines`` on the quickest engine: the table and the one line."""
    require("java-memory")
    args = ["--engines", "java-memory", "--no-tests", "--seconds", "1", "--warmup", "0.5"]
    args += ["--lines", "200", "--breakdown-seconds", "0.5"]
    out = subprocess.run(
        [sys.executable, "-m", "bench.engines", *args],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        r"bench-engines java-memory cmds_per_s=\d+ cpu_ms_per_cmd=[\d.]+ p99_ms=[\d.]+"
        r" rss_mb=\d+ start_s=[\d.]+ atomic_inc=400/400 conditional=5/5 tests=-/-",
        line,
    ), line
