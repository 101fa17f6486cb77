"""MongoDB-wire engines side by side: ``python -m bench.engines`` (``make bench-engines``).

Each engine local mode can start (``services/local/mongo_server.py``: FerretDB on SQLite, with
some SQLite pragmas too, FerretDB on PostgreSQL, mongo-java-server's memory and H2 backends) is
started on a fresh folder, one after the other, and

1. probed for correctness: 8 clients doing 50 ``$inc`` each on one field of one document
   (400 expected); 20 concurrent conditional decrements of a stock of 5 (exactly 5 expected to
   succeed); 20 concurrent inserts of one key under a unique index (exactly 1); and each command
   and operator the services use, once;
2. loaded with the add-to-cart command mix over a realistic collection (``--lines`` cart lines,
   200 products, the indexes services/cart and services/product create): a cart's lines by
   ``userId`` sorted, an insert of a line, a ``find_one_and_update`` with a filter on it, a
   product by ``_id``; ``--concurrency`` tasks on one PyMongo ``AsyncMongoClient`` for
   ``--seconds`` after a warm-up. Measured: commands/s, p99 latency of a command, the engine's
   CPU per command (user + system time from /proc of the engine's processes and all their
   children, live or reaped: PostgreSQL's backends count), its memory (proportional set size
   summed over those processes, so PostgreSQL's shared buffers count once), start-up time;
3. used as ``MONGO_URI`` for the services' test suite (``tests/services tests/platform``,
   ``pytest -n 2``), unless ``--no-tests``;
4. stopped, and checked that none of its processes is left.

It prints a table, then one line per engine:

    bench-engines <engine> cmds_per_s=… cpu_ms_per_cmd=… p99_ms=… rss_mb=… start_s=…
      atomic_inc=…/400 conditional=…/5 tests=<passed>/<total>   (one line)

``tests=-/-`` where the suite was not run (the SQLite pragma variants by default); ``total``
counts passed, failed and errors (skips are in the table). ``load`` in the table is the
machine's load average at the end of the measured mix: the figures compare only on a quiet
machine. The Python client shares the cores with the engine and can cap commands/s for the
cheapest engines; CPU per command is the engine's alone. ``--engines`` picks engines
(``--list`` shows them), ``--test-engines`` which get the suite, ``--workdir`` keeps logs and
the suite's output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bson import ObjectId
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from services.cart import repository as cart_repository
from services.local.mongo_server import MongoServer, start_engine
from services.local.processes import alive, process_tree
from services.product import repository as product_repository

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
INC_CLIENTS, INC_EACH = 8, 50
STOCK, DECREMENTS = 5, 20
UNIQUE_RACERS = 20
PRODUCTS = 200


@dataclass(frozen=True)
class Engine:
    """An engine as benchmarked: a ``mongo_server`` engine, with SQLite pragmas for variants."""

    name: str
    engine: str
    sqlite_pragmas: tuple[str, ...] = ()
    suite: bool = True  # the test suite runs on it by default
    note: str = ""

    def start(self, workdir: Path) -> MongoServer:
        return start_engine(self.engine, workdir, sqlite_pragmas=self.sqlite_pragmas)


ENGINES = [
    Engine(
        "ferretdb-sqlite",
        "ferretdb-sqlite",
        note="FerretDB's own pragmas: journal_mode(wal), busy_timeout(10000), auto_vacuum(none)",
    ),
    Engine(
        "ferretdb-sqlite-sync-normal",
        "ferretdb-sqlite",
        ("synchronous(normal)",),
        suite=False,
        note="+ synchronous(normal): WAL fsynced at checkpoints only",
    ),
    Engine(
        "ferretdb-sqlite-sync-off",
        "ferretdb-sqlite",
        ("synchronous(off)", "cache_size(-65536)"),
        suite=False,
        note="+ synchronous(off), a 64 MiB page cache per connection",
    ),
    Engine("ferretdb-postgres", "ferretdb-postgres", note="PostgreSQL 15, fsync off"),
    Engine("java-memory", "java-memory", note="mongo-java-server, memory backend"),
    Engine("java-h2", "java-h2", note="mongo-java-server, H2 MVStore file"),
]


# --- processes --------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def tree_cpu_ticks(pids: Iterable[int]) -> int:
    """User + system ticks of ``pids`` and every descendant: the live ones' own, plus what each
    process's reaped children used (cutime, cstime), so a backend that exited still counts."""
    total = 0
    for pid in process_tree(pids):
        fields = _stat(pid)
        if fields is not None:
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total


def tree_memory_mb(pids: Iterable[int]) -> tuple[float, float]:
    """(proportional set size, resident set size) summed over the tree, in MiB."""
    pss = rss = 0
    for pid in process_tree(pids):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                name, _, value = line.partition(":")
                if name == "Pss":
                    pss += int(value.split()[0])
                elif name == "Rss":
                    rss += int(value.split()[0])
    return pss / 1024, rss / 1024


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- correctness probes -----------------------------------------------------------------------


@dataclass
class Probes:
    atomic_inc: int = 0
    conditional: int = 0
    conditional_stock_left: int = 0
    unique_inserts: int = 0
    unique_docs: int = 0
    commands_ok: int = 0
    commands_total: int = 0
    command_failures: list[str] = field(default_factory=list)


async def _many_clients(uri: str, n: int) -> list[AsyncMongoClient[Any]]:
    clients: list[AsyncMongoClient[Any]] = [AsyncMongoClient(uri, tz_aware=True) for _ in range(n)]
    await asyncio.gather(*(c.admin.command("ping") for c in clients))
    return clients


async def probe_atomic_inc(uri: str) -> int:
    clients = await _many_clients(uri, INC_CLIENTS)
    try:
        coll = clients[0].probes.counters
        await coll.delete_many({})
        await coll.insert_one({"_id": "c", "n": 0})

        async def bump(client: AsyncMongoClient[Any]) -> None:
            for _ in range(INC_EACH):
                await client.probes.counters.update_one({"_id": "c"}, {"$inc": {"n": 1}})

        await asyncio.gather(*(bump(c) for c in clients))
        doc = await coll.find_one({"_id": "c"})
        return int(doc["n"]) if doc else 0
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def probe_conditional(uri: str) -> tuple[int, int]:
    """(decrements that succeeded, stock left)."""
    clients = await _many_clients(uri, DECREMENTS)
    try:
        coll = clients[0].probes.stock
        await coll.delete_many({})
        await coll.insert_one({"_id": "p", "stock": STOCK})

        async def take(client: AsyncMongoClient[Any]) -> bool:
            got = await client.probes.stock.find_one_and_update(
                {"_id": "p", "stock": {"$gte": 1}}, {"$inc": {"stock": -1}}
            )
            return got is not None

        taken = sum(await asyncio.gather(*(take(c) for c in clients)))
        doc = await coll.find_one({"_id": "p"})
        return taken, int(doc["stock"]) if doc else -1
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def probe_unique(uri: str) -> tuple[int, int]:
    """(inserts that succeeded, documents with the key) for racing inserts of one key."""
    clients = await _many_clients(uri, UNIQUE_RACERS)
    try:
        coll = clients[0].probes.unique
        await coll.drop()
        await coll.create_index([("k", ASCENDING)], unique=True)

        async def insert(client: AsyncMongoClient[Any]) -> bool:
            try:
                await client.probes.unique.insert_one({"k": "same"})
            except DuplicateKeyError:
                return False
            return True

        inserted = sum(await asyncio.gather(*(insert(c) for c in clients)))
        return inserted, await coll.count_documents({"k": "same"})
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def probe_commands(db: Any) -> tuple[int, int, list[str]]:
    """Each command and operator the services use, once: (passed, total, failures)."""
    coll: AsyncCollection[dict[str, Any]] = db.commands
    await coll.drop()
    now = datetime.now(UTC).replace(microsecond=0)
    docs = [
        {"_id": i, "u": f"u{i % 3}", "p": f"p{i}", "q": i, "tags": ["a"] if i % 2 else [], "t": now}
        for i in range(10)
    ]

    async def inserted() -> bool:
        await coll.insert_many(docs)
        return await coll.count_documents({}) == 10

    async def unique_index() -> bool:
        await coll.create_index([("u", 1), ("p", 1)], unique=True, name="u_p")
        await coll.create_index([("u", 1), ("t", 1), ("_id", 1)], name="u_t")
        names = {i["name"] async for i in await coll.list_indexes()}
        try:
            await coll.insert_one({"u": "u0", "p": "p0"})
        except DuplicateKeyError as exc:
            return {"u_p", "u_t"} <= names and exc.code == 11000
        return False

    async def sorted_page() -> bool:
        cursor = coll.find({}, sort=[("q", -1), ("_id", -1)], skip=2, limit=3)
        return [d["q"] async for d in cursor] == [7, 6, 5]

    async def count_limit() -> bool:
        return await coll.count_documents({"u": "u1"}, limit=1) == 1

    async def distinct() -> bool:
        return sorted(await coll.distinct("u")) == ["u0", "u1", "u2"]

    async def regex_or() -> bool:
        query = {"$or": [{"p": {"$regex": "P1", "$options": "i"}}, {"q": {"$gt": 8}}]}
        return sorted([d["_id"] async for d in coll.find(query)]) == [1, 9]

    async def in_ne_exists() -> bool:
        query = {"_id": {"$in": [1, 2, 3]}, "tags": {"$ne": "a"}, "t": {"$exists": True}}
        return [d["_id"] async for d in coll.find(query)] == [2]

    async def push_pull() -> bool:
        await coll.update_one({"_id": 2}, {"$push": {"tags": "r1"}})
        pushed = await coll.count_documents({"_id": 2, "tags": "r1"})
        await coll.update_one({"_id": 2}, {"$pull": {"tags": "r1"}})
        pulled = await coll.count_documents({"_id": 2, "tags": "r1"})
        return pushed == 1 and pulled == 0

    async def upsert_set_on_insert() -> bool:
        first = await coll.update_one(
            {"p": "new"}, {"$set": {"u": "u9"}, "$setOnInsert": {"q": 99}}, upsert=True
        )
        again = await coll.update_one(
            {"p": "new"}, {"$set": {"u": "u9"}, "$setOnInsert": {"q": 0}}, upsert=True
        )
        doc = await coll.find_one({"p": "new"})
        inserted_once = first.upserted_id is not None and again.upserted_id is None
        return inserted_once and doc is not None and doc["q"] == 99

    async def find_one_and_update_after() -> bool:
        doc = await coll.find_one_and_update(
            {"_id": 3, "q": {"$lte": 3}},
            {"$inc": {"q": 10}, "$set": {"seen": True}},
            return_document=ReturnDocument.AFTER,
        )
        missed = await coll.find_one_and_update({"_id": 3, "q": {"$lte": 3}}, {"$inc": {"q": 1}})
        return doc is not None and doc["q"] == 13 and missed is None

    async def lt_gte() -> bool:
        return await coll.count_documents({"q": {"$gte": 4, "$lt": 7}}) == 3

    async def delete() -> bool:
        one = await coll.delete_one({"_id": 0})
        many = await coll.delete_many({"u": "u2"})
        return one.deleted_count == 1 and many.deleted_count == 3

    async def dates() -> bool:
        doc = await coll.find_one({"_id": 1})
        return doc is not None and doc["t"] == now

    async def ping_build_info() -> bool:
        await db.command("ping")
        info = await db.client.admin.command("buildInfo")
        return "version" in info

    checks: list[tuple[str, Callable[[], Awaitable[bool]]]] = [
        ("insert_many", inserted),
        ("unique compound index, E11000", unique_index),
        ("find sort/skip/limit", sorted_page),
        ("count_documents limit", count_limit),
        ("distinct", distinct),
        ("$regex $options $or $gt", regex_or),
        ("$in $ne-on-array $exists", in_ne_exists),
        ("$push $pull", push_pull),
        ("upsert $setOnInsert", upsert_set_on_insert),
        ("find_one_and_update filter AFTER", find_one_and_update_after),
        ("$gte $lt", lt_gte),
        ("delete_one delete_many", delete),
        ("tz-aware datetime", dates),
        ("ping buildInfo", ping_build_info),
    ]
    failures = []
    for name, check in checks:
        try:
            if not await check():
                failures.append(name)
        except PyMongoError as exc:
            failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:120]}")
    return len(checks) - len(failures), len(checks), failures


async def run_probes(uri: str) -> Probes:
    probes = Probes()
    probes.atomic_inc = await probe_atomic_inc(uri)
    probes.conditional, probes.conditional_stock_left = await probe_conditional(uri)
    probes.unique_inserts, probes.unique_docs = await probe_unique(uri)
    client: AsyncMongoClient[Any] = AsyncMongoClient(uri, tz_aware=True)
    try:
        ok, total, failures = await probe_commands(client.probes)
    finally:
        await client.close()
    probes.commands_ok, probes.commands_total, probes.command_failures = ok, total, failures
    return probes


# --- the load ---------------------------------------------------------------------------------


# The add-to-cart command mix, one of each per round, and each alone for the breakdown.
KINDS = ("find-lines", "insert-line", "find-and-update", "find-by-id")


@dataclass
class Load:
    commands: int
    seconds: float
    p50_ms: float
    p99_ms: float
    engine_cpu_s: float
    helper_cpu_s: float  # of which the helpers' (PostgreSQL's server and backends)
    client_cpu_s: float
    pss_mb: float
    rss_mb: float
    errors: int
    seed_s: float
    # Each command kind alone (--breakdown-seconds): the engine's CPU ms per command.
    breakdown: dict[str, float] = field(default_factory=dict)
    load_average: float = 0.0  # the machine's, over the last minute, at the end of the mix


async def seed(db: Any, lines: int) -> tuple[list[tuple[str, str]], list[ObjectId]]:
    """The products and ``lines`` cart lines (ten a user); returns the lines' (userId,
    productId) and the products' ids."""
    await cart_repository.create_indexes(db)
    await product_repository.create_indexes(db)
    now = datetime.now(UTC)
    ids = [ObjectId() for _ in range(PRODUCTS)]
    products: list[dict[str, Any]] = [
        {
            "_id": ids[i],
            "sku": f"SKU-{i:05d}",
            "name": f"Product {i}",
            "nameKey": f"product {i}",
            "description": "A product of the benchmark catalogue.",
            "category": ("audio", "books", "garden", "kitchen")[i % 4],
            "priceCents": 100 + i,
            "stock": 1_000_000_000,
            "reservations": [],
            "createdAt": now,
            "updatedAt": now,
        }
        for i in range(PRODUCTS)
    ]
    await db.products.insert_many(products)
    users = [str(ObjectId()) for _ in range(max(1, lines // 10))]
    pairs: list[tuple[str, str]] = []
    batch: list[dict[str, Any]] = []
    for i in range(lines):
        user = users[i % len(users)]
        product_id = str(ids[(i * 7 + i // len(users)) % PRODUCTS])
        line = {
            "_id": ObjectId(),
            "userId": user,
            "productId": product_id,
            "quantity": 1,
            "addedPriceCents": 100,
            "addedAt": now,
            "updatedAt": now,
        }
        batch.append(line)
        pairs.append((user, product_id))
        if len(batch) == 1000:
            await db.cart_lines.insert_many(batch, ordered=False)
            batch = []
    if batch:
        await db.cart_lines.insert_many(batch, ordered=False)
    return pairs, ids


async def run_load(
    server: MongoServer,
    lines: int,
    seconds: float,
    warmup: float,
    concurrency: int,
    breakdown_seconds: float,
) -> Load:
    client: AsyncMongoClient[Any] = AsyncMongoClient(server.uri, tz_aware=True)
    db = client.bench
    began = time.monotonic()
    pairs, products = await seed(db, lines)
    seed_s = time.monotonic() - began
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = 0.0
    main_pids = [server.process.pid] if server.process else []
    helper_pids = [h.pid for h in server.helpers]

    async def timed(op: Awaitable[Any]) -> Any:
        nonlocal errors
        start = time.perf_counter()
        try:
            return await op
        except PyMongoError:
            errors += 1
            return None
        finally:
            if measuring:
                latencies.append(time.perf_counter() - start)

    async def shopper(seed_value: int, kinds: tuple[str, ...]) -> None:
        """Rounds of ``kinds`` until ``stop_at``: a cart's lines, a new line, a conditional
        update of that line (of a seeded one when alone), a product by id."""
        rng = random.Random(seed_value)
        while time.monotonic() < stop_at:
            user, product_id = pairs[rng.randrange(len(pairs))]
            now = datetime.now(UTC)
            if "find-lines" in kinds:
                order = cart_repository.LINE_ORDER[1:]
                await timed(db.cart_lines.find({"userId": user}, sort=order).to_list())
            if "insert-line" in kinds:
                product_id = str(ObjectId())  # new for this user: the insert succeeds
                line = {
                    "_id": ObjectId(),
                    "userId": user,
                    "productId": product_id,
                    "quantity": 1,
                    "addedPriceCents": 100,
                    "addedAt": now,
                    "updatedAt": now,
                }
                await timed(db.cart_lines.insert_one(line))
            if "find-and-update" in kinds:
                await timed(
                    db.cart_lines.find_one_and_update(
                        {"userId": user, "productId": product_id, "quantity": {"$lte": 98}},
                        {"$inc": {"quantity": 1}, "$set": {"updatedAt": now}},
                        return_document=ReturnDocument.AFTER,
                    )
                )
            if "find-by-id" in kinds:
                await timed(db.products.find_one({"_id": products[rng.randrange(len(products))]}))

    async def phase(kinds: tuple[str, ...], length: float, base: int) -> tuple[int, float, float]:
        """Run ``kinds`` for ``length`` seconds: (commands, engine CPU s, of which helpers')."""
        nonlocal stop_at
        count = len(latencies)
        ticks0, helpers0 = tree_cpu_ticks(main_pids), tree_cpu_ticks(helper_pids)
        t0 = time.monotonic()
        stop_at = t0 + length
        await asyncio.gather(*(shopper(base + i, kinds) for i in range(concurrency)))
        elapsed = time.monotonic() - t0
        helpers = (tree_cpu_ticks(helper_pids) - helpers0) / TICKS
        engine = (tree_cpu_ticks(main_pids) - ticks0) / TICKS + helpers
        phase_stats.append((len(latencies) - count, elapsed))
        return len(latencies) - count, engine, helpers

    phase_stats: list[tuple[int, float]] = []
    try:
        stop_at = time.monotonic() + warmup
        await asyncio.gather(*(shopper(i, KINDS) for i in range(concurrency)))
        measuring = True
        errors = 0
        own0 = _own_cpu()
        commands, engine_cpu, helper_cpu = await phase(KINDS, seconds, 1000)
        own1 = _own_cpu()
        elapsed = phase_stats[-1][1]
        load_average = os.getloadavg()[0]
        pss, rss = tree_memory_mb(server.pids)
        mixed = sorted(latencies)
        breakdown = {}
        if breakdown_seconds > 0:
            for i, kind in enumerate(KINDS):
                alone, cpu, _ = await phase((kind,), breakdown_seconds, 2000 + 100 * i)
                breakdown[kind] = cpu * 1000 / alone if alone else 0.0
    finally:
        await client.close()
    n = len(mixed)
    return Load(
        commands=commands,
        seconds=elapsed,
        p50_ms=mixed[n // 2] * 1000 if n else 0.0,
        p99_ms=mixed[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
        engine_cpu_s=engine_cpu,
        helper_cpu_s=helper_cpu,
        client_cpu_s=own1 - own0,
        pss_mb=pss,
        rss_mb=rss,
        errors=errors,
        seed_s=seed_s,
        breakdown=breakdown,
        load_average=load_average,
    )


# --- the test suite ---------------------------------------------------------------------------


@dataclass
class Suite:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    ran: bool = False
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors


def run_suite(uri: str, output: Path, workers: int, timeout: float) -> Suite:
    env = {k: v for k, v in os.environ.items() if k != "CHECKOUT_DB_ENGINE"}
    env["MONGO_URI"] = uri
    cmd = [
        sys.executable, "-m", "pytest", "-n", str(workers), "tests/services",
        "tests/platform", "-q", "-p", "no:cacheprovider", "-rfE",
    ]  # fmt: skip
    began = time.monotonic()
    with open(output, "w") as out:
        try:
            subprocess.run(
                cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            out.write(f"\nbench-engines: the suite did not finish within {timeout:.0f}s\n")
    suite = Suite(seconds=time.monotonic() - began, ran=True)
    text = output.read_text(errors="replace")
    summary = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    if summary:
        for count, word in re.findall(r"(\d+) (passed|failed|errors?|skipped)", summary[-1]):
            if word == "passed":
                suite.passed = int(count)
            elif word == "failed":
                suite.failed = int(count)
            elif word.startswith("error"):
                suite.errors = int(count)
            else:
                suite.skipped = int(count)
    suite.failures = re.findall(r"^(?:FAILED|ERROR) (tests/\S+)", text, re.M)
    return suite


# --- one engine -------------------------------------------------------------------------------


@dataclass
class Result:
    engine: Engine
    start_s: float = 0.0
    probes: Probes | None = None
    load: Load | None = None
    suite: Suite = field(default_factory=Suite)
    stopped_clean: bool = False
    error: str = ""

    @property
    def cmds_per_s(self) -> float:
        return self.load.commands / self.load.seconds if self.load else 0.0

    @property
    def cpu_ms_per_cmd(self) -> float:
        if not self.load or not self.load.commands:
            return 0.0
        return self.load.engine_cpu_s * 1000 / self.load.commands

    @property
    def client_cpu_ms_per_cmd(self) -> float:
        if not self.load or not self.load.commands:
            return 0.0
        return self.load.client_cpu_s * 1000 / self.load.commands

    def line(self) -> str:
        p = self.probes or Probes()
        tests = f"{self.suite.passed}/{self.suite.total}" if self.suite.ran else "-/-"
        return (
            f"bench-engines {self.engine.name} cmds_per_s={self.cmds_per_s:.0f}"
            f" cpu_ms_per_cmd={self.cpu_ms_per_cmd:.3f}"
            f" p99_ms={self.load.p99_ms if self.load else 0:.1f}"
            f" rss_mb={self.load.pss_mb if self.load else 0:.0f} start_s={self.start_s:.2f}"
            f" atomic_inc={p.atomic_inc}/{INC_CLIENTS * INC_EACH}"
            f" conditional={p.conditional}/{STOCK} tests={tests}"
        )


def measure(engine: Engine, args: argparse.Namespace, base: Path) -> Result:
    result = Result(engine)
    workdir = base / engine.name
    shutil.rmtree(workdir, ignore_errors=True)
    began = time.monotonic()
    try:
        server = engine.start(workdir)
    except Exception as exc:
        result.error = f"start: {type(exc).__name__}: {exc}"
        return result
    result.start_s = time.monotonic() - began
    tree: list[int] = []
    try:
        log(f"{engine.name}: started in {result.start_s:.2f}s at {server.uri}; probing")
        result.probes = asyncio.run(run_probes(server.uri))
        log(f"{engine.name}: load, {args.lines} lines, {args.concurrency} tasks, {args.seconds}s")
        result.load = asyncio.run(
            run_load(
                server,
                args.lines,
                args.seconds,
                args.warmup,
                args.concurrency,
                args.breakdown_seconds,
            )
        )
        if engine.name in args.test_engines:
            log(f"{engine.name}: the test suite (pytest -n {args.workers})")
            result.suite = run_suite(
                server.uri, workdir.parent / f"{engine.name}.pytest.txt", args.workers, 3600
            )
        tree = process_tree(server.pids)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        tree = tree or process_tree(server.pids)
        server.stop()
        time.sleep(0.5)
        result.stopped_clean = not any(alive(pid) for pid in tree)
    return result


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _render(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def table(results: list[Result]) -> str:
    rows = [
        ("engine", "cmds/s", "cpu ms/cmd", "(helpers)", "client ms", "p50 ms", "p99 ms",
         "mem MB", "start s", "$inc", "cond", "unique", "commands", "tests", "skip", "stop",
         "load"),
    ]  # fmt: skip
    for r in results:
        p, load = r.probes or Probes(), r.load
        helpers = load.helper_cpu_s * 1000 / load.commands if load and load.commands else 0.0
        rows.append(
            (
                r.engine.name,
                f"{r.cmds_per_s:.0f}",
                f"{r.cpu_ms_per_cmd:.3f}",
                f"{helpers:.3f}" if helpers else "-",
                f"{r.client_cpu_ms_per_cmd:.3f}",
                f"{load.p50_ms:.1f}" if load else "-",
                f"{load.p99_ms:.1f}" if load else "-",
                f"{load.pss_mb:.0f}" if load else "-",
                f"{r.start_s:.2f}",
                f"{p.atomic_inc}/{INC_CLIENTS * INC_EACH}",
                f"{p.conditional}/{STOCK}",
                f"{p.unique_inserts}/1",
                f"{p.commands_ok}/{p.commands_total}",
                f"{r.suite.passed}/{r.suite.total}" if r.suite.ran else "-",
                f"{r.suite.skipped}" if r.suite.ran else "-",
                "-" if not r.start_s else "clean" if r.stopped_clean else "LEFT",
                f"{load.load_average:.1f}" if load else "-",
            )
        )
    text = _render(rows)
    if any(r.load and r.load.breakdown for r in results):
        alone: list[tuple[str, ...]] = [("engine, cpu ms per command alone", *KINDS)]
        for r in results:
            if r.load and r.load.breakdown:
                alone.append((r.engine.name, *(f"{r.load.breakdown[k]:.3f}" for k in KINDS)))
        text += "\n\n" + _render(alone)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [e.name for e in ENGINES]
    parser.add_argument("--engines", default=",".join(names), help="comma-separated (--list)")
    parser.add_argument("--list", action="store_true", help="list the engines and exit")
    parser.add_argument(
        "--test-engines",
        default=",".join(e.name for e in ENGINES if e.suite),
        help="engines the test suite runs on ('' for none)",
    )
    parser.add_argument("--no-tests", action="store_true", help="run the suite on no engine")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured load per engine")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--breakdown-seconds",
        type=float,
        default=4.0,
        help="each command kind alone, for its CPU per command (0: none)",
    )
    parser.add_argument("--lines", type=int, default=20_000, help="cart lines seeded")
    parser.add_argument("--workers", type=int, default=2, help="pytest -n for the suite")
    parser.add_argument("--workdir", type=Path, help="keep logs and suite output here")
    args = parser.parse_args(argv)
    if args.list:
        for e in ENGINES:
            print(f"{e.name:30} {e.note}")
        return 0
    wanted = [n for n in args.engines.split(",") if n]
    unknown = set(wanted) - set(names)
    if unknown:
        parser.error(f"unknown engines {sorted(unknown)}; known: {', '.join(names)}")
    args.test_engines = set() if args.no_tests else set(filter(None, args.test_engines.split(",")))
    base = args.workdir or Path(tempfile.mkdtemp(prefix="bench-engines-"))
    base.mkdir(parents=True, exist_ok=True)
    if args.workdir is None:
        base.chmod(0o711)  # PostgreSQL runs as its own user when this is root: it passes through
    results = []
    for engine in ENGINES:
        if engine.name in wanted:
            results.append(measure(engine, args, base))
    print(table(results))
    for r in results:
        p = r.probes
        if r.error:
            print(f"{r.engine.name}: FAILED: {r.error}", file=sys.stderr)
        if p and p.command_failures:
            print(f"{r.engine.name}: commands failing: {p.command_failures}", file=sys.stderr)
        if p:
            print(
                f"{r.engine.name}: stock left {p.conditional_stock_left} after {p.conditional} "
                f"decrements; unique key: {p.unique_inserts} inserted, {p.unique_docs} stored",
                file=sys.stderr,
            )
        if r.load and r.load.errors:
            print(f"{r.engine.name}: {r.load.errors} commands failed under load", file=sys.stderr)
        if r.suite.ran:
            print(
                f"{r.engine.name}: suite {r.suite.passed} passed, {r.suite.failed} failed, "
                f"{r.suite.errors} errors, {r.suite.skipped} skipped in {r.suite.seconds:.0f}s",
                file=sys.stderr,
            )
            for test in r.suite.failures:
                print(f"    {test}", file=sys.stderr)
    for r in results:
        print(r.line())
    if args.workdir is None:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if any(r.error or (r.start_s and not r.stopped_clean) for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
