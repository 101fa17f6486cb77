"""Every query the hot paths issue is served by an index: built by the services' own index
set-up on a fresh database, each query shape (equality fields, then the sort, read forwards or
backwards) must be a prefix of one index's key, on every server. Where the server is MongoDB,
``explain`` must also show an index scan and no in-memory sort. Servers without such a plan skip
that second test, saying so, as told by the server itself: FerretDB (``ferretdbVersion`` in
``buildInfo``) answers ``explain`` with SQLite's query plan, not MongoDB's stages, and
mongo-java-server (the default engine of local mode and the tests) has no ``explain`` command
(code 59, CommandNotFound); a mongod answers with its plan, and a wrong plan fails.

Left out on purpose: the catalogue's text search (``q``: a case-insensitive regular expression
over name and description, which no B-tree index serves; the catalogue is small)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from services.auth.repository import create_indexes as auth_indexes
from services.cart.repository import create_indexes as cart_indexes
from services.local.mongo_server import MongoServer
from services.order.repository import NEWEST_FIRST
from services.order.repository import create_indexes as order_indexes
from services.product.repository import SORTS
from services.product.repository import create_indexes as product_indexes

Key = list[tuple[str, int]]


@dataclass(frozen=True)
class Query:
    name: str
    collection: str
    equality: tuple[str, ...]
    sort: tuple[tuple[str, int], ...] = ()

    def wanted(self) -> Key:
        return [(field, 1) for field in self.equality] + list(self.sort)


SETUPS: dict[str, Callable[[Any], Awaitable[None]]] = {
    "auth": auth_indexes,
    "product": product_indexes,
    "cart": cart_indexes,
    "order": order_indexes,
}
HOT: dict[str, list[Query]] = {
    "product": [
        Query("read", "products", ("_id",)),
        Query("lookup by ids", "products", ("_id",)),
        *(Query(f"list by {s}", "products", (), tuple(SORTS[s])) for s in SORTS),
        *(Query(f"category by {s}", "products", ("category",), tuple(SORTS[s])) for s in SORTS),
        Query("by sku", "products", ("sku",)),
    ],
    "cart": [
        Query("view", "cart_lines", ("userId",), (("addedAt", 1), ("_id", 1))),
        Query("one line", "cart_lines", ("userId", "productId")),
    ],
    "order": [
        Query("by checkout key", "orders", ("checkoutKey",)),
        Query("my orders", "orders", ("userId",), tuple(NEWEST_FIRST)),
        Query("one order", "orders", ("_id",)),
    ],
    "auth": [
        Query("sign in", "users", ("email",)),
        Query("token check", "users", ("_id",)),
    ],
}


def serves(index: Key, query: Query) -> bool:
    """Whether an index with this key serves the query's equality fields and its sort: the
    equality fields first (in any order), then the sort's fields, read forwards or backwards."""
    n = len(query.equality)
    if {field for field, _ in index[:n]} != set(query.equality):
        return False
    rest = index[n : n + len(query.sort)]
    forwards = list(query.sort)
    backwards = [(field, -direction) for field, direction in query.sort]
    return rest in (forwards, backwards)


@pytest.fixture
async def client(mongo_server: MongoServer) -> AsyncIterator[AsyncMongoClient[Any]]:
    connection: AsyncMongoClient[Any] = AsyncMongoClient(mongo_server.uri)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.mark.parametrize("service", list(HOT))
async def test_every_hot_query_has_an_index(
    client: AsyncMongoClient[Any], db_prefix: str, service: str
) -> None:
    db = client[f"{db_prefix}_indexes_{service}"]
    await SETUPS[service](db)
    missing = []
    for query in HOT[service]:
        info = await db[query.collection].index_information()
        keys: list[Key] = [[(f, int(d)) for f, d in spec["key"]] for spec in info.values()]
        if query.equality == ("_id",) and not query.sort:
            continue  # every collection has it
        if not any(serves(key, query) for key in keys):
            missing.append(f"{query.collection}: {query.name} wants {query.wanted()}; has {keys}")
    assert not missing, "\n".join(missing)


COMMAND_NOT_FOUND = 59


async def plan(db: Any, query: Query) -> str:
    """The winning plan of ``query`` as text; skips the test where the server has none to give."""
    probe = {field: "x" for field in query.equality if field != "_id"}
    cursor = db[query.collection].find(probe, sort=list(query.sort) or None)
    try:
        explained = await cursor.explain()
    except OperationFailure as exc:
        if exc.code == COMMAND_NOT_FOUND:
            reason = (exc.details or {}).get("errmsg", str(exc))
            pytest.skip(f"no plan to read: {reason!r} (code 59), as on mongo-java-server")
        raise
    return str(explained["queryPlanner"]["winningPlan"])


@pytest.mark.parametrize("service", list(HOT))
async def test_every_hot_query_plan_reads_an_index(
    client: AsyncMongoClient[Any], db_prefix: str, service: str
) -> None:
    db = client[f"{db_prefix}_plans_{service}"]
    if "ferretdbVersion" in await db.command("buildInfo"):
        pytest.skip("no plan to read: FerretDB's explain gives SQLite's query plan, not MongoDB's")
    await SETUPS[service](db)
    for query in HOT[service]:
        if not query.equality and not query.sort:
            continue
        text = await plan(db, query)
        assert "IXSCAN" in text or "IDHACK" in text or "EXPRESS" in text, (query.name, text)
        assert "'stage': 'SORT'" not in text, (query.name, text)


def test_the_shape_rule_itself() -> None:
    view = Query("view", "cart_lines", ("userId",), (("addedAt", 1), ("_id", 1)))
    assert serves([("userId", 1), ("addedAt", 1), ("_id", 1)], view)
    assert serves([("userId", 1), ("addedAt", -1), ("_id", -1)], view)  # read backwards
    assert not serves([("userId", 1), ("productId", 1)], view)
    assert not serves([("userId", 1), ("addedAt", 1), ("_id", -1)], view)  # mixed: a sort stage
    assert not serves([("addedAt", 1), ("userId", 1)], view)
