"""Fixtures shared by the cart and order tests: a stocked product service, cart and order wired
to it, and shoppers (tokens signed with the test keyring; cart and order verify them locally, so
no auth service is needed)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from bson import ObjectId

from services.local.mongo_server import MongoServer
from services.product.catalogue import load_catalogue, read_catalogue
from tests.conftest import RunningService, run_service, service_settings
from tests.infra.keys import Keyrings

PROBLEM = "application/problem+json"
# Small retry settings: a test whose dependency is down must get its 503 quickly.
FAST_RETRIES: dict[str, Any] = {"http_retries": 1, "http_backoff_seconds": 0.01}
# Order's worker looking every 0.1 s and finishing what waits at once.
BUSY_WORKER: dict[str, Any] = {"finish_grace_seconds": 0, "finish_interval_seconds": 0.1}

# How long after a deletion the test cart calls it settled (the platform's default is 20 s).
CART_SETTLE = 1.0

StartService = Callable[..., contextlib.AbstractAsyncContextManager[RunningService]]


@pytest.fixture
async def catalogue(product: RunningService) -> RunningService:
    """The product service with the sample catalogue loaded."""
    await load_catalogue(product.app.state.db, read_catalogue())
    return product


@pytest.fixture
async def cart(
    catalogue: RunningService, start_service: StartService
) -> AsyncIterator[RunningService]:
    async with start_service(
        "cart", product_url=catalogue.url, deletion_settle_seconds=CART_SETTLE, **FAST_RETRIES
    ) as svc:
        yield svc


@pytest.fixture
async def order(
    catalogue: RunningService, cart: RunningService, start_service: StartService
) -> AsyncIterator[RunningService]:
    async with start_service(
        "order", product_url=catalogue.url, cart_url=cart.url, **FAST_RETRIES
    ) as svc:
        yield svc


@contextlib.asynccontextmanager
async def run_all_services(
    mongo: MongoServer,
    keyrings: Keyrings,
    db_prefix: str,
    only: dict[str, dict[str, Any]] | None = None,
    **overrides: Any,
) -> AsyncIterator[dict[str, RunningService]]:
    """The four services wired to each other (auth's deletion cascade reaches cart and order),
    with the sample catalogue loaded; for module-scoped fixtures, which cannot use the ones
    above. ``overrides`` are settings given to all four, ``only[name]`` to that one."""

    def settings(name: str, **urls: str) -> Any:
        retries = FAST_RETRIES if name != "auth" else {}
        own = (only or {}).get(name, {})
        return service_settings(
            name, mongo, db_prefix, keyrings, **retries, **urls, **overrides, **own
        )

    async with (
        run_service(settings("product")) as product,
        run_service(settings("cart", product_url=product.url)) as cart,
        run_service(settings("order", product_url=product.url, cart_url=cart.url)) as order,
        run_service(settings("auth", cart_url=cart.url, order_url=order.url)) as auth,
    ):
        await load_catalogue(product.app.state.db, read_catalogue())
        yield {"auth": auth, "product": product, "cart": cart, "order": order}


@contextlib.asynccontextmanager
async def module_services(
    mongo: MongoServer,
    tmp_path_factory: pytest.TempPathFactory,
    tag: str,
    only: dict[str, dict[str, Any]] | None = None,
) -> AsyncIterator[tuple[dict[str, RunningService], Keyrings]]:
    """``run_all_services`` for a module-scoped fixture: keyrings of its own and databases named
    ``<tag><random>`` so modules sharing the server stay apart."""
    keyrings = Keyrings.create(Path(tmp_path_factory.mktemp(tag)) / "keys")
    prefix = tag[0] + uuid.uuid4().hex[:12]
    async with run_all_services(mongo, keyrings, prefix, only) as services:
        yield services, keyrings


async def product_id(product: RunningService, sku: str) -> str:
    doc = await product.app.state.db.products.find_one({"sku": sku})
    assert doc is not None, sku
    return str(doc["_id"])


async def stock(product: RunningService, pid: str) -> int:
    return (await product.client.get(f"/api/v1/products/{pid}")).json()["stock"]


async def set_stock(product: RunningService, pid: str, units: int) -> None:
    await product.app.state.db.products.update_one(
        {"_id": ObjectId(pid)}, {"$set": {"stock": units}}
    )


@dataclass
class Shopper:
    user_id: str
    headers: dict[str, str]
    token: str


@pytest.fixture
def shopper(keyrings: Keyrings) -> Callable[..., Shopper]:
    """``shopper()`` is a new customer; ``shopper(role="admin")`` a new admin."""

    def make(role: str = "customer") -> Shopper:
        user_id = str(ObjectId())
        token = keyrings.token(user_id, role)
        return Shopper(user_id, {"Authorization": f"Bearer {token}"}, token)

    return make


@pytest.fixture
def internal(keyrings: Keyrings) -> dict[str, str]:
    """The internal API key header, as services send it."""
    return {"X-Internal-Api-Key": keyrings.internal_key()}


async def add_to_cart(cart: RunningService, who: Shopper, pid: str, quantity: int = 1) -> Any:
    response = await cart.client.post(
        "/api/v1/cart/items", json={"productId": pid, "quantity": quantity}, headers=who.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def checkout(order: RunningService, who: Shopper, key: str | None = None) -> Any:
    headers = {**who.headers, **({"Idempotency-Key": key} if key else {})}
    return await order.client.post("/api/v1/orders", headers=headers)


async def stored_orders(order: RunningService, **query: Any) -> int:
    """How many of the orders matching ``query`` are stored for shoppers to see, now or once
    their checkout is done: all but the abandoned ones, the records a failed checkout leaves for
    the worker to give their stock back by (and then remove)."""
    return int(
        await order.app.state.db.orders.count_documents({**query, "status": {"$ne": "abandoned"}})
    )


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
    """``check()``'s first truthy result, polled; its last result once ``timeout`` passed (for
    the caller's assert to show)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.05)


async def cart_view_once(cart: RunningService, who: Shopper, shows: Callable[[Any], bool]) -> Any:
    """The shopper's cart view once it ``shows`` something product changed: a view may show
    product facts up to the cart's ``product_facts_max_age_seconds`` old (2 s)."""

    last: Any = None

    async def shown() -> bool:
        nonlocal last
        last = (await cart.client.get("/api/v1/cart", headers=who.headers)).json()
        return shows(last)

    await eventually(shown, cart.app.state.settings.product_facts_max_age_seconds + 5.0)
    return last
