"""The database commands and service calls of the paths shoppers hit most, counted by the
services themselves (their /metrics) around one request each, on warm services: a regression
that adds a round trip fails here, whatever the machine's speed.

On FerretDB a cart write also takes and gives back a lease (two commands, see
services/kit/locks.py); on MongoDB it does not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from bench.api import counters
from services.local.platform import LocalPlatform
from tests.platform.conftest import Shopper


def counted(
    platform: LocalPlatform, request: Callable[[], httpx.Response]
) -> dict[str, tuple[int, int]]:
    # Not auth nor order: their workers (the deletion cascade, the order finisher) poll their
    # databases all the time.
    services = ("product", "cart")
    before = {s: counters([platform.urls[s]]) for s in services}
    answer = request()
    assert answer.status_code < 300, answer.text
    after = {s: counters([platform.urls[s]]) for s in services}
    return {
        s: (round(after[s][0] - before[s][0]), round(after[s][1] - before[s][1]))
        for s in services
        if after[s] != before[s]
    }


@pytest.fixture
def leases(platform: LocalPlatform) -> int:
    """Commands a lease costs here: 2 on FerretDB (take and give back), 0 on MongoDB. Told
    the way the services tell (buildInfo's ``ferretdbVersion``), so that a server named by
    ``MONGO_URI`` counts right too."""
    assert platform.mongo is not None
    with MongoClient[dict[str, Any]](platform.mongo.uri) as client:
        return 2 if "ferretdbVersion" in client.admin.command("buildInfo") else 0


def test_the_hot_paths_make_the_fewest_round_trips(
    platform: LocalPlatform, new_shopper: Callable[[], Shopper], leases: int
) -> None:
    shopper = new_shopper()
    products = shopper.call("GET", "product", "/api/v1/products", params={"pageSize": 2}).json()
    first, second = (p["id"] for p in products["items"])
    shopper.call("POST", "cart", "/api/v1/cart/items", json={"productId": first, "quantity": 1})
    shopper.call("GET", "cart", "/api/v1/cart")  # the token check has seen this user

    read = counted(platform, lambda: shopper.call("GET", "product", f"/api/v1/products/{first}"))
    assert read == {"product": (1, 0)}
    listed = counted(platform, lambda: shopper.call("GET", "product", "/api/v1/products"))
    assert listed == {"product": (2, 0)}  # the page and its count
    view = counted(platform, lambda: shopper.call("GET", "cart", "/api/v1/cart"))
    # cart: its lines, which are its deletion check too (the token check leaves it to them);
    # the lines' products as product told the add above, remembered for up to 2 s
    # (product_facts_max_age_seconds); a loaded machine may take longer, and then cart asks
    # product (one find, no count)
    assert view in ({"cart": (1, 0)}, {"cart": (1, 1), "product": (1, 0)}), view
    add = counted(
        platform,
        lambda: shopper.call(
            "POST", "cart", "/api/v1/cart/items", json={"productId": second, "quantity": 1}
        ),
    )
    # cart: the lines under the lock (also the deletion check: a deleted user's cart holds the
    # deletion marker), the insert; product: one find, fresh (existence, stock, price)
    assert add == {"cart": (2 + leases, 1), "product": (1, 0)}, add
    again = counted(
        platform,
        lambda: shopper.call(
            "POST", "cart", "/api/v1/cart/items", json={"productId": second, "quantity": 1}
        ),
    )
    # a product already in the cart: the lines, one conditional update of that line
    assert again == {"cart": (2 + leases, 1), "product": (1, 0)}, again
    change = counted(
        platform,
        lambda: shopper.call("PATCH", "cart", f"/api/v1/cart/items/{second}", json={"quantity": 2}),
    )
    assert change == {"cart": (2 + leases, 1), "product": (1, 0)}, change
    print("hot paths:", read, listed, view, add, again, change)


def test_a_checkout_makes_the_fewest_round_trips(
    platform: LocalPlatform, new_shopper: Callable[[], Shopper], leases: int
) -> None:
    """Product and cart's share of a cart checkout of two products (order's own commands are
    counted by ``make bench-api``: its worker polls its database meanwhile)."""
    shopper = new_shopper()
    products = shopper.call("GET", "product", "/api/v1/products", params={"pageSize": 2}).json()
    for item in products["items"]:
        added = shopper.call(
            "POST", "cart", "/api/v1/cart/items", json={"productId": item["id"], "quantity": 1}
        )
        assert added.status_code == 200, added.text
    placed = counted(platform, lambda: shopper.call("POST", "order", "/api/v1/orders"))
    # product: one conditional write per item, which sells it (stock, mark, no reservation
    # record, no commit call), each under a lease on FerretDB; cart: the lines read, then the
    # ordered lines taken out under the user's lock (the removal's record, the lines' update)
    assert placed == {"product": (2 * (1 + leases), 0), "cart": (3 + leases, 0)}, placed
    print("checkout:", placed)
