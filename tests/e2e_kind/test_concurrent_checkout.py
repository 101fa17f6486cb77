"""Concurrent checkouts of one product on the kind cluster, with two product replicas (issue 22).

The sample Checkout's product service is scaled to two replicas through the Checkout's spec
(`spec.services.product.replicas`), and both pods are seen serving through the ingress. The admin
makes a product of its own with ``STOCK`` units; ``SHOPPERS`` shoppers, each signed in with its
own token, put 1 or 2 units of it in their carts and check out all at once (released by a
barrier). Every answer is a placed order or a 409 out-of-stock problem; the placed orders hold
exactly ``STOCK`` units, the stock reads 0 afterwards (never below), each shopper's order list
shows exactly the orders placed for them, priced, and a second round of checkouts (the seed route
with items, and the clean checkout of the carts still holding the product) gets only 409s.
The product's replicas are put back afterwards, so the other tests see the sample as before.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from tests.e2e_kind.conftest import Platform
from tests.infra.kind import record_figure

pytestmark = pytest.mark.e2e

REPLICAS = 2
STOCK = 7
SHOPPERS = 24
# Shoppers ordering 2 units; the others order 1. More single-unit shoppers than units: one of
# them is refused only once no unit is left, so the stock must end at exactly 0.
DOUBLES = 8
PRICE_CENTS = 1_299
PASSWORD = "concurrent checkout shopper password"
RESERVATIONS_PATH = "/internal/v1/reservations"
# A setup call answered 429 or 503 (the shared sign-in limit, back-pressure) is retried until then.
PATIENCE_SECONDS = 180


@dataclass
class Shopper:
    email: str
    quantity: int
    http: httpx.Client
    token: str = ""
    user_id: str = ""

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


Outcome = httpx.Response | Exception


def _patiently(send: Callable[[], httpx.Response]) -> httpx.Response:
    """``send()``, again after Retry-After while it is answered 429 or 503 (setup calls only)."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        answer = send()
        if answer.status_code not in (429, 503) or time.monotonic() > deadline:
            return answer
        time.sleep(min(float(answer.headers.get("Retry-After", "1")), 30.0) + 0.25)


def _sign_in(http: httpx.Client, email: str, password: str) -> dict[str, Any]:
    signed = _patiently(
        lambda: http.post("/api/v1/auth/token", json={"email": email, "password": password})
    )
    assert signed.status_code == 200, signed.text
    body: dict[str, Any] = signed.json()
    return body


def _refresh(shopper: Shopper) -> None:
    """A new token when this one has less than 60 s left (another test may shorten lifetimes)."""
    if shopper.token:
        claims = jwt.decode(shopper.token, options={"verify_signature": False})
        if claims["exp"] - time.time() > 60:
            return
    signed = _sign_in(shopper.http, shopper.email, PASSWORD)
    shopper.token, shopper.user_id = signed["accessToken"], signed["user"]["id"]


def _patch(platform: Platform, kind: str, patch: Any) -> None:
    platform.cluster.kubectl(
        "-n", platform.namespace, "patch", "checkout", platform.name,
        f"--type={kind}", "-p", json.dumps(patch),
    )  # fmt: skip


def _deployment_replicas(platform: Platform) -> int:
    deployment = platform.cluster.get(
        "deployment", f"{platform.name}-product", "-n", platform.namespace
    )
    replicas: int = deployment["spec"]["replicas"]
    return replicas


def _ready_product_pods(platform: Platform) -> list[str]:
    names = []
    for pod in platform.pods("product"):
        meta = pod["metadata"]
        if "mongodb" in meta["name"] or meta.get("deletionTimestamp"):
            continue
        conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
        if conditions.get("Ready") == "True":
            names.append(meta["name"])
    return sorted(names)


def _requests_by_pod(
    platform: Platform, pods: list[str], since: float, prefix: str
) -> dict[str, list[dict[str, Any]]]:
    """The access-log lines of each pod since ``since`` (monotonic) whose request id starts with
    ``prefix`` (the id a caller sends is kept, and passed on to the services it calls)."""
    seconds = int(time.monotonic() - since) + 30
    found: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        text = platform.cluster.kubectl(
            "-n", platform.namespace, "logs", pod, "--all-containers", f"--since={seconds}s",
            timeout=60,
        ).stdout  # fmt: skip
        entries = []
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == "request" and str(entry.get("requestId", "")).startswith(prefix):
                entries.append(entry)
        found[pod] = entries
    return found


@pytest.fixture
def product_pods(platform: Platform) -> Iterator[list[str]]:
    """The sample's product service at two replicas, both Ready; put back afterwards."""
    spec = platform.checkout()["spec"]
    before: int | None = spec.get("services", {}).get("product", {}).get("replicas")
    try:
        _patch(platform, "merge", {"spec": {"services": {"product": {"replicas": REPLICAS}}}})
        platform.cluster.wait_for(
            lambda: _deployment_replicas(platform) == REPLICAS,
            timeout=120,
            what=f"the operator set the product Deployment to {REPLICAS} replicas",
        )
        platform.wait_settled(timeout=600)
        pods = platform.cluster.wait_for(
            lambda: (ready := _ready_product_pods(platform)) and len(ready) == REPLICAS and ready,
            timeout=300,
            what=f"{REPLICAS} product pods Ready",
        )
        yield pods
    finally:
        if before is None:
            _patch(platform, "json", [{"op": "remove", "path": "/spec/services/product/replicas"}])
        else:
            _patch(platform, "merge", {"spec": {"services": {"product": {"replicas": before}}}})
        platform.cluster.wait_for(
            lambda: _deployment_replicas(platform) == (before or 1),
            timeout=120,
            what="the product Deployment back at its replicas",
        )
        platform.wait_settled(timeout=600)


def _all_at_once(calls: list[Callable[[], httpx.Response]]) -> list[Outcome]:
    """Every call on a thread of its own, all released together by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], httpx.Response]) -> Outcome:
        barrier.wait(timeout=60)
        try:
            return call()
        except httpx.HTTPError as error:
            return error

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout=300) for future in futures]


def _kind_of(outcome: Outcome, product_id: str) -> str:
    """placed, out of stock, or what else it was."""
    if isinstance(outcome, Exception):
        return f"transport error {type(outcome).__name__}: {outcome}"
    status, content_type = outcome.status_code, outcome.headers.get("content-type", "")
    if status in (200, 201):
        return "placed"
    if status == 409 and content_type.startswith("application/problem+json"):
        short = outcome.json().get("outOfStock") or []
        if [item.get("productId") for item in short] == [product_id]:
            return "out of stock"
    return f"{status} {content_type}: {outcome.text[:300]}"


def _placed_orders(shoppers: list[Shopper], product_id: str) -> dict[str, list[dict[str, Any]]]:
    """Each shopper's orders (by email), every line checked to be of the product and priced."""
    orders = {}
    for shopper in shoppers:
        _refresh(shopper)
        listed = _patiently(
            lambda shopper=shopper: shopper.http.get(  # type: ignore[misc]
                "/api/v1/orders", headers=shopper.auth(), params={"pageSize": 50}
            )
        )
        assert listed.status_code == 200, listed.text
        items: list[dict[str, Any]] = listed.json()["items"]
        for order in items:
            assert order["status"] == "placed", order
            for line in order["lines"]:
                assert line["productId"] == product_id, order
                assert isinstance(line.get("unitPriceCents"), int), order
                assert line["unitPriceCents"] == PRICE_CENTS, order
                assert line["lineTotalCents"] == PRICE_CENTS * line["quantity"], order
            assert order["totalCents"] == sum(line["lineTotalCents"] for line in order["lines"])
        orders[shopper.email] = items
    return orders


def _stock(platform: Platform, product_id: str, reads: int = 4) -> list[int]:
    """The product's stock read ``reads`` times through the ingress (it spreads them over the
    replicas)."""
    with platform.client() as http:
        answers = [http.get(f"/api/v1/products/{product_id}") for _ in range(reads)]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return [int(a.json()["stock"]) for a in answers]


def test_concurrent_checkouts_with_two_product_replicas_sell_exactly_the_stock(
    platform: Platform, product_pods: list[str]
) -> None:
    began = time.monotonic()
    tag = f"cc-{uuid.uuid4().hex[:10]}"

    with ExitStack() as stack:
        admin_http = stack.enter_context(platform.client())
        admin = {
            "Authorization": "Bearer "
            + _sign_in(admin_http, platform.admin_email, platform.admin_password)["accessToken"]
        }

        # Both product pods serve requests through the ingress.
        probes = iter(range(10_000))

        def both_serve() -> bool:
            for _ in range(4):
                answer = admin_http.get(
                    "/api/v1/products", params={"pageSize": 1},
                    headers={"X-Request-ID": f"{tag}-probe-{next(probes)}"},
                )  # fmt: skip
                assert answer.status_code == 200, answer.text
            seen = _requests_by_pod(platform, product_pods, began, f"{tag}-probe-")
            return all(seen.values())

        platform.cluster.wait_for(both_serve, timeout=180, what="both product pods serving")

        made = _patiently(
            lambda: admin_http.post(
                "/api/v1/products",
                headers=admin,
                json={
                    "sku": tag,
                    # Between the sample's names: not the journeys' first product, nor one of the
                    # load's last six (which it restocks).
                    "name": f"Limited Mug {tag}",
                    "category": "accessories",
                    "priceCents": PRICE_CENTS,
                    "stock": STOCK,
                },
            )
        )
        assert made.status_code == 201, made.text
        product_id: str = made.json()["id"]
        try:
            shoppers = [
                Shopper(
                    email=f"{tag}-{n}@example.com",
                    quantity=2 if n < DOUBLES else 1,
                    http=stack.enter_context(platform.client()),
                )
                for n in range(SHOPPERS)
            ]
            for shopper in shoppers:
                registered = _patiently(
                    lambda shopper=shopper: shopper.http.post(  # type: ignore[misc]
                        "/api/v1/auth/register", json={"email": shopper.email, "password": PASSWORD}
                    )
                )
                assert registered.status_code == 201, registered.text
            for shopper in shoppers:
                _refresh(shopper)
                added = _patiently(
                    lambda shopper=shopper: shopper.http.post(  # type: ignore[misc]
                        "/api/v1/cart/items",
                        headers=shopper.auth(),
                        json={"productId": product_id, "quantity": shopper.quantity},
                    )
                )
                assert added.status_code in (200, 201), added.text
            setup_seconds = time.monotonic() - began

            # Round 1: every shopper checks out the cart, all at once.
            first = _all_at_once(
                [
                    lambda n=n, shopper=shopper: shopper.http.post(  # type: ignore[misc]
                        "/api/v1/orders",
                        headers={
                            **shopper.auth(),
                            "Idempotency-Key": str(uuid.uuid4()),
                            "X-Request-ID": f"{tag}-r1-{n}",
                        },
                    )
                    for n, shopper in enumerate(shoppers)
                ]
            )
            kinds = [_kind_of(outcome, product_id) for outcome in first]
            assert set(kinds) <= {"placed", "out of stock"}, Counter(kinds)
            winners = [s for s, kind in zip(shoppers, kinds, strict=True) if kind == "placed"]
            losers = [s for s, kind in zip(shoppers, kinds, strict=True) if kind != "placed"]
            placed = {
                s.email: outcome.json()
                for s, outcome in zip(shoppers, first, strict=True)
                if isinstance(outcome, httpx.Response) and outcome.status_code in (200, 201)
            }
            units = 0
            for shopper in winners:
                order = placed[shopper.email]
                lines = [(line["productId"], line["quantity"]) for line in order["lines"]]
                assert lines == [(product_id, shopper.quantity)], order
                units += shopper.quantity
            assert units == STOCK, (units, Counter(kinds))

            stock = _stock(platform, product_id)
            assert stock == [0] * len(stock), stock

            listed = _placed_orders(shoppers, product_id)
            assert sum(len(orders) for orders in listed.values()) == len(winners), listed
            for shopper in shoppers:
                expected = [placed[shopper.email]["id"]] if shopper in winners else []
                assert [o["id"] for o in listed[shopper.email]] == expected, shopper.email
            listed_units = sum(
                line["quantity"]
                for orders in listed.values()
                for order in orders
                for line in order["lines"]
            )
            assert listed_units == STOCK, listed

            # Round 2: nothing is left. Every shopper orders the product by the seed route with
            # items, and the losers check out their carts (which still hold it) once more.
            for shopper in shoppers:
                _refresh(shopper)
            calls: list[Callable[[], httpx.Response]] = [
                lambda n=n, shopper=shopper: shopper.http.post(  # type: ignore[misc]
                    "/api/order",
                    headers={**shopper.auth(), "X-Request-ID": f"{tag}-r2-seed-{n}"},
                    json={"items": [{"productId": product_id, "quantity": shopper.quantity}]},
                )
                for n, shopper in enumerate(shoppers)
            ]
            calls += [
                lambda n=n, shopper=shopper: shopper.http.post(  # type: ignore[misc]
                    "/api/v1/orders",
                    headers={
                        **shopper.auth(),
                        "Idempotency-Key": str(uuid.uuid4()),
                        "X-Request-ID": f"{tag}-r2-cart-{n}",
                    },
                )
                for n, shopper in enumerate(losers)
            ]
            second = [_kind_of(outcome, product_id) for outcome in _all_at_once(calls)]
            assert set(second) == {"out of stock"}, Counter(second)
            stock = _stock(platform, product_id)
            assert stock == [0] * len(stock), stock
            again = _placed_orders(shoppers, product_id)
            assert {e: [o["id"] for o in orders] for e, orders in again.items()} == {
                e: [o["id"] for o in orders] for e, orders in listed.items()
            }

            # Which product pod served the reservations (order passes the request id on).
            served = _requests_by_pod(platform, product_pods, began, f"{tag}-r")
            reserves = {
                pod: Counter(
                    str(entry["requestId"]).split("-")[2]
                    for entry in entries
                    if str(entry.get("path", "")).rstrip("/") == RESERVATIONS_PATH
                )
                for pod, entries in served.items()
            }
            print(
                f"setup {setup_seconds:.0f} s; reservation calls by product pod (round: calls):"
                + "".join(f"\n  {pod}: {dict(sorted(c.items()))}" for pod, c in reserves.items())
            )
            assert _ready_product_pods(platform) == product_pods
        finally:
            # The catalogue as before for the tests after this one (a fresh token: another test
            # may have shortened their lifetime).
            token = _sign_in(admin_http, platform.admin_email, platform.admin_password)
            deleted = admin_http.delete(
                f"/api/v1/products/{product_id}",
                headers={"Authorization": f"Bearer {token['accessToken']}"},
            )
            if deleted.status_code != 204:
                print(f"product {product_id} not deleted: {deleted.status_code} {deleted.text}")

    record_figure(
        f"cluster concurrent checkout: {SHOPPERS} shoppers, {STOCK} units,"
        f" {len(winners)} orders, stock {stock[-1]}, product replicas {len(product_pods)}"
    )
