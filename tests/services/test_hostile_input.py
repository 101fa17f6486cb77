"""Hostile input to every route of the four services (issue 11, "No 5xx from input").

Whatever body, header, path or query a client sends, the answer is a success or a 4xx
problem+json: never a 5xx, a hang or a connection closed without an answer. A refused request
changes no data in any of the four databases.

The routes come from each app's own route table (tests/services/routes.py), so a new route is
covered without touching this file; a new route with a body needs a valid example in
``VALID_BODIES`` (a test says so), so that the hostile value is the only thing wrong with the
request and reaches as far into the service as it can.

The four services run once for the module, on one set of databases.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from bson import ObjectId

from services.local.mongo_server import MongoServer
from tests.conftest import RunningService
from tests.services.conftest import module_services
from tests.services.routes import OPERATIONS, SERVICES, Operation

PROBLEM = "application/problem+json"
ADMIN_EMAIL = "hostile-admin@example.com"
ADMIN_PASSWORD = "correct horse battery"
# Failed sign-ins are counted on purpose (the sign-in limit): a refused sign-in writes there.
# Leases (services/kit/locks.py, on FerretDB) are taken and given back around guarded writes:
# their collection may appear, and must be empty again once the request is answered.
UNCOMPARED_COLLECTIONS = {"rate_limits"}
EMPTY_WHEN_IDLE = {"locks"}
ANSWER_WITHIN_SECONDS = 10.0
BODY_OPERATIONS = [op for op in OPERATIONS if op.has_body]
PATH_OPERATIONS = [op for op in OPERATIONS if op.path_params]


# --- the running platform -----------------------------------------------------------------------


@dataclass
class World:
    services: dict[str, RunningService]
    admin_id: str
    headers: dict[str, str]  # an admin's bearer token and the internal API key
    product_ids: list[str]

    def client(self, op: Operation) -> httpx.AsyncClient:
        return self.services[op.service].client

    def harmless_path(self, op: Operation, **values: str) -> str:
        """``op.path`` with ids that name nothing (so no route deletes or changes real data),
        except those given."""
        path = op.path
        for name in op.path_params:
            value = values.get(name, str(ObjectId()))
            path = path.replace(f"{{{name}}}", value)
        return path

    def valid_path(self, op: Operation) -> str:
        """``op.path`` with ids that name real data, for requests whose body is the problem."""
        real = {
            "product_id": self.product_ids[0],
            "user_id": self.admin_id,
            "reservation_id": "r-" + uuid.uuid4().hex,
        }
        return self.harmless_path(op, **{k: v for k, v in real.items() if k in op.path_params})

    # The state after the last refused request, which changed nothing: the next request starts
    # from it (a snapshot takes a while, and most requests here are refused).
    known_state: dict[str, Any] | None = None

    async def snapshot(self) -> dict[str, Any]:
        """Every document of every collection in the four databases (read all at once)."""
        dbs = {name: svc.app.state.db for name, svc in self.services.items()}
        names = await asyncio.gather(*(db.list_collection_names() for db in dbs.values()))
        keys = [
            (service, collection)
            for service, collections in zip(dbs, names, strict=True)
            for collection in sorted(collections)
            if collection not in UNCOMPARED_COLLECTIONS
        ]
        contents = await asyncio.gather(
            *(dbs[s][c].find({}).sort("_id", 1).to_list(None) for s, c in keys)
        )
        return {
            f"{s}.{c}": docs
            for (s, c), docs in zip(keys, contents, strict=True)
            if docs or c not in EMPTY_WHEN_IDLE
        }


@pytest.fixture(scope="module")
async def world(
    mongo_server: MongoServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    # Order's worker settles each placed order with product once past its deadline (writes to
    # both databases a while after the checkout): here it waits an hour, so that every write a
    # snapshot sees is the request's own.
    quiet_worker = {"order": {"finish_interval_seconds": 3600.0}}
    async with module_services(mongo_server, tmp_path_factory, "hostile", quiet_worker) as (
        services,
        keyrings,
    ):
        auth, product, cart = services["auth"], services["product"], services["cart"]
        admin = await auth.app.state.auth_service.ensure_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        headers = {
            "Authorization": f"Bearer {keyrings.token(admin.id, 'admin')}",
            "X-Internal-Api-Key": keyrings.internal_key(),
        }
        # Stock that the accepted checkouts cannot use up: an out-of-stock 409 would be no test.
        await product.app.state.db.products.update_many({}, {"$set": {"stock": 10_000_000}})
        docs = await product.app.state.db.products.find({}).sort("sku", 1).to_list(None)
        product_ids = [str(doc["_id"]) for doc in docs]
        added = await cart.client.post(
            "/api/v1/cart/items", json={"productId": product_ids[0]}, headers=headers
        )
        assert added.status_code == 200, added.text
        yield World(services, admin.id, headers, product_ids)


# --- what every answer must be ------------------------------------------------------------------


def assert_answered_well(response: httpx.Response) -> None:
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:500]}"
    if status >= 400:
        content_type = response.headers.get("content-type", "")
        assert content_type.startswith(PROBLEM), f"{status} {content_type}: {response.text[:300]}"
        problem = response.json()
        assert problem["status"] == status, problem
        assert "Traceback" not in response.text


async def send(world: World, op: Operation, path: str, **kwargs: Any) -> httpx.Response:
    world.known_state = None
    headers = {**world.headers, **kwargs.pop("headers", {})}
    for name in [name for name, value in headers.items() if value is None]:
        del headers[name]
    try:
        return await asyncio.wait_for(
            world.client(op).request(op.method, path, headers=headers, **kwargs),
            ANSWER_WITHIN_SECONDS,
        )
    except TimeoutError:
        pytest.fail(f"{op.method} {path}: no answer within {ANSWER_WITHIN_SECONDS}s")


async def refused_changes_nothing(
    world: World, op: Operation, path: str, **kwargs: Any
) -> httpx.Response:
    """Send the request; it must be answered well, and if refused, leave every database as it
    was."""
    before = world.known_state or await world.snapshot()
    response = await send(world, op, path, **kwargs)
    assert_answered_well(response)
    if response.status_code >= 400:
        after = await world.snapshot()
        assert after == before, f"refused with {response.status_code}, yet wrote"
        world.known_state = after
    return response


# --- bodies -------------------------------------------------------------------------------------


def _new(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


ValidBody = Callable[[World], dict[str, Any]]


def _register(world: World) -> dict[str, Any]:
    return {"email": f"{_new('u')}@example.com", "password": ADMIN_PASSWORD, "name": "Ada"}


def _sign_in(world: World) -> dict[str, Any]:
    return {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}


def _line(world: World) -> dict[str, Any]:
    return {"productId": world.product_ids[1], "quantity": 1}


VALID_BODIES: dict[str, ValidBody] = {
    "register": _register,
    "seedRegister": _register,
    "seedCreateUser": _register,
    "signIn": _sign_in,
    "seedSignIn": _sign_in,
    "seedLogin": _sign_in,
    "createProduct": lambda w: {
        "sku": _new("SKU"),
        "name": "Hostile lamp",
        "category": "lighting",
        "priceCents": 1299,
        "stock": 3,
        "currency": "EUR",
        "description": "A lamp.",
        "imageUrl": "https://example.com/lamp.png",
    },
    "updateProduct": lambda w: {"name": "Renamed", "priceCents": 1500, "stock": 40},
    "reserveStock": lambda w: {"reservationId": _new("r"), "items": [_line(w)]},
    "releaseReservation": lambda w: {"items": [_line(w)]},
    "settleReservations": lambda w: {"reservationIds": [_new("r")]},
    "addCartItem": lambda w: {"productId": w.product_ids[0], "quantity": 1},
    "seedAddToCart": lambda w: {"productId": w.product_ids[0], "quantity": 1},
    "updateCartItem": lambda w: {"quantity": 2},
    "internalRemoveOrderedLines": lambda w: {"removalId": _new("rm"), "lines": [_line(w)]},
    "seedCreateOrder": lambda w: {"items": [_line(w)], "userId": w.admin_id},
}

DEPTH = 5000
# Raw JSON documents that make any body refused, or (duplicate keys) possibly accepted.
RAW_BODIES: dict[str, bytes] = {
    "nested-arrays": b"[" * DEPTH + b"]" * DEPTH,
    "nested-objects": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    "nested-arrays-30000": b"[" * 30_000 + b"]" * 30_000,
    "nested-unclosed": b"[" * DEPTH,
    "nested-in-field": b'{"email": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
    "not-utf8": b'{"email": "\xff\xfe\xfa"}',
    "not-utf8-overlong": b'{"email": "\xc0\xaf"}',
    "not-utf8-encoded-surrogate": b'{"email": "\xed\xa0\x80"}',
    "utf16-with-bom": '{"email": "a@example.com"}'.encode("utf-16"),
    "utf8-bom": b'\xef\xbb\xbf{"email": "a@example.com"}',
    "lone-surrogate": b'{"email": "\\ud800"}',
    "lone-low-surrogate": b'{"email": "\\udfff@example.com"}',
    "nul-byte-raw": b'{"email": "a\x00b"}',
    "empty": b"",
    "whitespace": b"   ",
    "null": b"null",
    "number": b"1e400",
    "huge-integer": b"9" * 5000,
    "string": b'"text"',
    "array": b"[]",
    "truncated": b'{"email": "a@',
    "trailing-garbage": b"{} {}",
    "nan": b'{"quantity": NaN}',
    "comment": b'{"quantity": 1 /* more */}',
}
# Values put in place of each field of a valid body, one at a time (raw JSON text).
HOSTILE_VALUES: dict[str, str] = {
    "op-gt": '{"$gt": ""}',
    "op-ne": '{"$ne": null}',
    "op-where": '{"$where": "sleep(10000) || true"}',
    "op-regex": '{"$regex": ".*"}',
    "op-in": '{"$in": [1, 2]}',
    "op-string": '"$where"',
    "huge-integer": "9" * 400,
    "huge-negative": "-" + "9" * 400,
    "float-out-of-range": "1e400",
    "negative": "-1",
    "int64-overflow": str(2**63),
    "fraction": "1.5",
    "nul-in-string": '"a\\u0000b"',
    "lone-surrogate": '"\\ud800"',
    "control-chars": '"\\u0001\\u001b[31m\\r\\n"',
    "long-string": '"' + "x" * 60_000 + '"',
    "null": "null",
    "bool": "true",
    "array": '["a"]',
    "deep-array": "[" * DEPTH + "]" * DEPTH,
}


# No field of any body takes these.
ALWAYS_REFUSED_VALUES = {
    "op-gt",
    "op-ne",
    "op-where",
    "op-regex",
    "op-in",
    "float-out-of-range",
    "lone-surrogate",
    "deep-array",
    "long-string",
}

# Quantities, prices and stock are whole numbers in a range: none of these is one.
COUNT_FIELDS = {"quantity", "priceCents", "stock"}
OUT_OF_RANGE_COUNTS = {"huge-integer", "huge-negative", "negative", "int64-overflow", "fraction"}


def substitute(body: dict[str, Any], field: str, raw: str) -> bytes:
    """``body`` as JSON with ``field`` (``lines.0.productId`` for nested ones) set to ``raw``."""
    marker = "__HOSTILE_" + uuid.uuid4().hex + "__"
    target: Any = body
    *parents, last = field.split(".")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    target[last] = marker
    return json.dumps(body).replace(f'"{marker}"', raw).encode("utf-8")


def fields_of(body: dict[str, Any], prefix: str = "") -> list[str]:
    """Each field of ``body``, and those of the first element of a list of objects."""
    found = []
    for key, value in body.items():
        found.append(prefix + key)
        if isinstance(value, list) and value and isinstance(value[0], dict):
            found += fields_of(value[0], f"{prefix}{key}.0.")
    return found


def test_every_body_route_has_a_valid_example() -> None:
    missing = [op.id for op in BODY_OPERATIONS if op.operation_id not in VALID_BODIES]
    assert not missing, f"add valid examples to VALID_BODIES for {missing}"
    assert len(BODY_OPERATIONS) >= 14


def test_the_routes_are_all_there() -> None:
    # A check on the discovery itself: each service's routes were found, with their inputs.
    by_service = {s: [op for op in OPERATIONS if op.service == s] for s in SERVICES}
    assert all(len(ops) >= 8 for ops in by_service.values()), by_service
    assert any(op.query_params for op in OPERATIONS)
    assert any(op.path_params for op in OPERATIONS)


@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=lambda op: op.id)
async def test_valid_examples_are_accepted(world: World, op: Operation) -> None:
    # Without this the hostile cases could all be refused for some other reason.
    body = VALID_BODIES[str(op.operation_id)](world)
    response = await send(world, op, world.valid_path(op), json=body)
    assert response.status_code < 300 or response.status_code == 409, response.text


@pytest.mark.parametrize("case", list(RAW_BODIES), ids=str)
@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=lambda op: op.id)
async def test_raw_bodies(world: World, op: Operation, case: str) -> None:
    response = await refused_changes_nothing(
        world,
        op,
        world.valid_path(op),
        content=RAW_BODIES[case],
        headers={"Content-Type": "application/json"},
    )
    if case.startswith(("nested", "not-utf8", "lone-")):
        assert response.status_code == 400, response.text


async def send_json(world: World, op: Operation, body: Any) -> Any:
    """``body`` as the JSON body of ``op`` on a valid path; nothing may change if it is refused."""
    return await refused_changes_nothing(
        world, op, world.valid_path(op), content=body, headers={"Content-Type": "application/json"}
    )


@pytest.mark.parametrize("value", list(HOSTILE_VALUES), ids=str)
@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=lambda op: op.id)
async def test_hostile_values_in_every_body_field(world: World, op: Operation, value: str) -> None:
    example = VALID_BODIES[str(op.operation_id)]
    for field in fields_of(example(world)):
        body = substitute(example(world), field, HOSTILE_VALUES[value])
        response = await send_json(world, op, body)
        if value in ALWAYS_REFUSED_VALUES or (
            value in OUT_OF_RANGE_COUNTS and field.rsplit(".", 1)[-1] in COUNT_FIELDS
        ):
            assert response.status_code == 400, (field, response.text)


@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=lambda op: op.id)
async def test_duplicate_keys(world: World, op: Operation) -> None:
    # Each top-level key twice, once with an operator. The decoder keeps the last copy: an
    # operator first is overridden, an operator last is refused; none reaches a query.
    example = VALID_BODIES[str(op.operation_id)]
    for field in [f for f in fields_of(example(world)) if "." not in f]:
        good = json.dumps(example(world)).encode()
        operator = b'"%s": {"$gt": ""}' % field.encode()
        for body, refused in [
            (b"{" + operator + b", " + good[1:], False),
            (good[:-1] + b", " + operator + b"}", True),
        ]:
            response = await send_json(world, op, body)
            if refused:
                assert response.status_code == 400, response.text


async def test_oversized_bodies_are_413(world: World) -> None:
    limit = world.services["auth"].settings.max_body_bytes
    for op in BODY_OPERATIONS:
        big = b'{"name": "' + b"x" * limit + b'"}'
        response = await send_json(world, op, big)
        assert response.status_code == 413, (op.id, response.text)

        async def chunks(body: bytes = big) -> AsyncIterator[bytes]:
            for start in range(0, len(body), 8192):
                yield body[start : start + 8192]

        # Chunked, without a Content-Length: the limit holds as the body streams in.
        response = await refused_changes_nothing(
            world,
            op,
            world.valid_path(op),
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413, (op.id, response.text)


CONTENT_TYPES = {
    "text-plain": "text/plain",
    "form": "application/x-www-form-urlencoded",
    "multipart": "multipart/form-data; boundary=xyz",
    "xml": "application/xml",
    "msgpack": "application/x-msgpack",
    "garbage": "a/b/c; ;;; charset=",
    "json-latin1": "application/json; charset=latin-1",
    "json-utf16": "application/json; charset=utf-16",
    "missing": None,
}


@pytest.mark.parametrize("content_type", list(CONTENT_TYPES), ids=str)
@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=lambda op: op.id)
async def test_content_types(world: World, op: Operation, content_type: str) -> None:
    body = json.dumps(VALID_BODIES[str(op.operation_id)](world)).encode()
    response = await refused_changes_nothing(
        world,
        op,
        world.valid_path(op),
        content=body,
        headers={"Content-Type": CONTENT_TYPES[content_type]},
    )
    if content_type in ("text-plain", "form", "multipart", "xml", "msgpack", "garbage"):
        assert response.status_code == 415, response.text


# --- paths --------------------------------------------------------------------------------------

# Raw path segments (already percent-encoded where needed).
PATH_VALUES: dict[str, str] = {
    "op-gt": quote('{"$gt": ""}', safe=""),
    "op-where": quote('{"$where": "sleep(10000)"}', safe=""),
    "dollar-where": "$where",
    "dollar-gt": quote("$gt", safe=""),
    "dotted": "a.b.$c",
    "traversal": quote("../../etc/passwd", safe=""),
    "traversal-raw": "..%2f..%2f..%2fetc%2fpasswd",
    "very-long": "a" * 10_000,
    "nul": "a%00b",
    "not-utf8": "%ff%fe",
    "encoded-surrogate": "%ed%a0%80",
    "unicode": quote("ü€😀", safe=""),
    "object-id-like": "5" * 24,
    "object-id-upper": "A" * 24,
    "huge-number": "9" * 400,
    "negative": "-1",
    "spaces": "%20%20",
    "percent": "%25",
}


@pytest.mark.parametrize("value", list(PATH_VALUES), ids=str)
@pytest.mark.parametrize("op", PATH_OPERATIONS, ids=lambda op: op.id)
async def test_hostile_path_values(world: World, op: Operation, value: str) -> None:
    body = VALID_BODIES[str(op.operation_id)](world) if op.has_body else None
    for name in op.path_params:
        path = world.harmless_path(op, **{name: PATH_VALUES[value]})
        await refused_changes_nothing(
            world, op, path, **({"json": body} if body is not None else {})
        )


# --- queries ------------------------------------------------------------------------------------

QUERY_VALUES: dict[str, str] = {
    "op-gt": quote('{"$gt": ""}', safe=""),
    "dollar-where": quote("$where", safe=""),
    "huge-integer": "9" * 400,
    "float-out-of-range": "1e400",
    "nan": "NaN",
    "negative": "-1",
    "zero": "0",
    "very-long": "a" * 10_000,
    "nul": "a%00b",
    "not-utf8": "%ff%fe",
    "encoded-surrogate": "%ed%a0%80",
    "regex": quote(".*(a+)+$", safe=""),
    "empty": "",
}


@pytest.mark.parametrize("value", list(QUERY_VALUES), ids=str)
@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.id)
async def test_hostile_query_values(world: World, op: Operation, value: str) -> None:
    raw = QUERY_VALUES[value]
    # Declared parameters one at a time, then as bracket keys (qs-style operator injection),
    # repeated, and undeclared ones.
    queries = [f"{name}={raw}" for name, _ in op.query_params]
    queries += [f"{name}%5B%24gt%5D={raw}" for name, _ in op.query_params]
    queries += [f"{name}={raw}&{name}=1" for name, _ in op.query_params]
    queries.append(f"%24where={raw}&{raw or 'x'}={raw}")
    body = VALID_BODIES[str(op.operation_id)](world) if op.has_body else None
    for query in queries:
        path = world.harmless_path(op) + "?" + query
        await refused_changes_nothing(world, op, path, **({"json": body} if body else {}))


# --- headers ------------------------------------------------------------------------------------

HEADER_CASES: dict[str, dict[str, Any]] = {
    "no-credentials": {"Authorization": None, "X-Internal-Api-Key": None},
    "bearer-operator": {"Authorization": 'Bearer {"$gt": ""}', "X-Internal-Api-Key": None},
    "bearer-long": {"Authorization": "Bearer " + "a" * 8000, "X-Internal-Api-Key": None},
    "bearer-not-utf8": {"Authorization": b"Bearer \xff\xfe\xfd", "X-Internal-Api-Key": None},
    "bearer-jwt-garbage": {
        "Authorization": "Bearer eyJ.eyJ.x",
        "X-Internal-Api-Key": None,
    },
    "basic": {"Authorization": "Basic Zm9vOmJhcg==", "X-Internal-Api-Key": None},
    "bearer-empty": {"Authorization": "Bearer", "X-Internal-Api-Key": None},
    "bearer-spaces": {"Authorization": "Bearer    \t  x", "X-Internal-Api-Key": None},
    "internal-key-operator": {"X-Internal-Api-Key": '{"$gt": ""}'},
    "internal-key-long": {"X-Internal-Api-Key": "k" * 8000},
    "internal-key-not-utf8": {"X-Internal-Api-Key": b"\xff\xfe"},
    "request-id-hostile": {"X-Request-ID": b'{"$gt": ""} \xff' + b"x" * 500},
    "idempotency-key-odd": {"Idempotency-Key": b"\xff\xfe" + b"k" * 300},
    "idempotency-key-operator": {"Idempotency-Key": '{"$gt":""}'},
    "forwarded-for-garbage": {"X-Forwarded-For": "not-an-ip, ::::, 999.1.1.1"},
    "accept-xml": {"Accept": "application/xml"},
    "accept-garbage": {"Accept": ";;;q=x/,"},
    "many-headers": {f"X-Junk-{i}": "v" * 40 for i in range(80)},
}


@pytest.mark.parametrize("case", list(HEADER_CASES), ids=str)
@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.id)
async def test_hostile_headers(world: World, op: Operation, case: str) -> None:
    body = VALID_BODIES[str(op.operation_id)](world) if op.has_body else None
    await refused_changes_nothing(
        world,
        op,
        world.harmless_path(op),
        headers=HEADER_CASES[case],
        **({"json": body} if body else {}),
    )


# --- what only a raw socket can send ------------------------------------------------------------


async def raw_exchange(url: str, request: bytes) -> bytes:
    """Send ``request`` as it is and read the whole answer (the server must answer, then
    close)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(1 << 20), ANSWER_WITHIN_SECONDS)
    finally:
        writer.close()


# Each request, and who answers it: "app" (problem+json), or "server" when it is not valid HTTP
# and uvicorn refuses it before any app sees it (a plain-text 400 "Invalid HTTP request").
RAW_REQUESTS: dict[str, tuple[bytes, str]] = {
    "path-not-utf8": (
        b"GET /api/v1/products/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "server",
    ),
    "query-not-utf8": (
        b"GET /api/v1/products?q=\xff\xfe&category=%ff HTTP/1.1\r\nHost: x\r\n"
        b"Connection: close\r\n\r\n",
        "server",
    ),
    "content-length-negative": (
        b"POST /api/v1/products HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n"
        b"Connection: close\r\n\r\n{}",
        "server",
    ),
    "request-line-garbage": (b"\x16\x03\x01\x02\x00 / HTTP/1.1\r\n\r\n", "server"),
    # Refused from the header alone, before the client has sent the body it announced.
    "content-length-overstated": (
        b"POST /api/v1/products HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 999999999\r\nConnection: close\r\n\r\n{}",
        "app",
    ),
    "header-of-70kb": (
        b"GET /api/v1/products?q=%ff HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n"
        b"Connection: close\r\n\r\n",
        "app",
    ),
}


@pytest.mark.parametrize("case", list(RAW_REQUESTS), ids=str)
async def test_raw_requests_get_an_answer(world: World, case: str) -> None:
    request, answerer = RAW_REQUESTS[case]
    answer = await raw_exchange(world.services["product"].url, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    assert 200 <= status < 500, answer[:500]
    if answerer == "app" and status >= 400:
        assert headers["content-type"].startswith(PROBLEM), answer[:500]
        assert json.loads(body)["status"] == status
    if answerer == "server":
        assert status == 400 and "x-request-id" not in headers, answer[:500]
