"""A mixed shopper load through the platform's public host, like the smoke run the reference shops
make after each deploy: shoppers register and sign in once, then browse, add to their carts, read
them, check out now and then (with an Idempotency-Key) and list their orders.

Every request counts: an answer other than the expected status, or no answer at all, is a
failure, with a sample kept for the report. Bounded in time and in requests; traffic goes only to
the ingress on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import jwt

if TYPE_CHECKING:
    from tests.e2e_kind.conftest import Platform

PASSWORD = "load shopper password"


@dataclass
class LoadReport:
    sent: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def summary(self) -> str:
        lines = [f"{self.sent} requests in {self.seconds:.1f}s, {self.failed} failed"]
        lines += [f"  {op}: {count}" for op, count in sorted(self.by_operation.items())]
        lines += [f"  failure: {sample}" for sample in self.samples[:10]]
        return "\n".join(lines)


def _expiry(token: str) -> float:
    claims = jwt.decode(token, options={"verify_signature": False})
    return float(claims["exp"])


class ShopperLoad:
    """``await ShopperLoad(...).run(seconds)``; ``stop()`` ends it early from another task."""

    def __init__(
        self,
        base_url: str,
        host: str,
        product_ids: list[str],
        *,
        shoppers: int = 6,
        max_requests: int = 20_000,
        think_time: float = 0.02,
        seed: int = 1,
    ) -> None:
        self.base_url = base_url
        self.host = host
        self.product_ids = product_ids
        self.shoppers = shoppers
        self.max_requests = max_requests
        self.think_time = think_time
        self.rng = random.Random(seed)
        self.report = LoadReport()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def call(
        self,
        http: httpx.AsyncClient,
        op: str,
        method: str,
        path: str,
        *,
        expect: tuple[int, ...] = (200,),
        **kwargs: Any,
    ) -> httpx.Response | None:
        self.report.sent += 1
        try:
            response = await http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            self.report.by_operation[f"{op} error"] += 1
            self.report.failures["transport"] += 1
            self.report.samples.append(f"{op}: {type(error).__name__}: {error}")
            return None
        self.report.by_operation[f"{op} {response.status_code}"] += 1
        if response.status_code not in expect:
            # A 503 that says when to come back is told apart from one that does not.
            retry = response.status_code == 503 and "retry-after" in response.headers
            self.report.failures[f"{response.status_code}{' retry-after' if retry else ''}"] += 1
            self.report.samples.append(f"{op}: {response.status_code} {response.text[:200]}")
            return None
        return response

    def _going(self, deadline: float) -> bool:
        return (
            not self._stop.is_set()
            and time.monotonic() < deadline
            and self.report.sent < self.max_requests
        )

    async def _shopper(self, http: httpx.AsyncClient, deadline: float) -> None:
        email = f"load-{uuid.uuid4().hex[:12]}@example.com"
        credentials = {"email": email, "password": PASSWORD}
        if not await self.call(
            http, "register", "POST", "/api/v1/auth/register", json=credentials, expect=(201,)
        ):
            return
        signed = await self.call(http, "sign in", "POST", "/api/v1/auth/token", json=credentials)
        if signed is None:
            return
        token = signed.json()["accessToken"]
        step = 0
        while self._going(deadline):
            step += 1
            # Sign in again shortly before the token expires, as a real client does.
            if time.time() > _expiry(token) - 15:
                signed = await self.call(
                    http, "sign in", "POST", "/api/v1/auth/token", json=credentials
                )
                if signed is not None:
                    token = signed.json()["accessToken"]
            auth = {"Authorization": f"Bearer {token}"}
            product = self.rng.choice(self.product_ids)
            await self.call(http, "browse", "GET", "/api/v1/products", params={"pageSize": 10})
            await self.call(http, "product", "GET", f"/api/v1/products/{product}")
            await self.call(
                http,
                "add to cart",
                "POST",
                "/api/v1/cart/items",
                headers=auth,
                json={"productId": product, "quantity": 1},
            )
            await self.call(http, "view cart", "GET", "/api/v1/cart", headers=auth)
            if step % 4 == 0:
                key = {"Idempotency-Key": str(uuid.uuid4())}
                await self.call(
                    http,
                    "check out",
                    "POST",
                    "/api/v1/orders",
                    headers={**auth, **key},
                    expect=(201,),
                )
                await self.call(http, "orders", "GET", "/api/v1/orders", headers=auth)
            await asyncio.sleep(self.think_time)

    async def run(self, seconds: float) -> LoadReport:
        began = time.monotonic()
        deadline = began + seconds
        limits = httpx.Limits(max_connections=self.shoppers * 2)
        async with httpx.AsyncClient(
            base_url=self.base_url, headers={"Host": self.host}, timeout=15, limits=limits
        ) as http:
            await asyncio.gather(*(self._shopper(http, deadline) for _ in range(self.shoppers)))
        self.report.seconds = time.monotonic() - began
        return self.report


class BackgroundLoad:
    """The shopper load on ``platform`` in a thread of its own, for as long as a test needs it:
    ``with BackgroundLoad(platform) as load: ...; report = load.stop()``."""

    def __init__(self, platform: Platform, *, shoppers: int = 4) -> None:
        self.load = ShopperLoad(
            f"http://127.0.0.1:{platform.port}",
            platform.host,
            load_products(platform),
            shoppers=shoppers,
            max_requests=200_000,
            think_time=0.05,
        )
        self.report: LoadReport | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.report = self.loop.run_until_complete(self.load.run(1800))

    def __enter__(self) -> BackgroundLoad:
        self.thread.start()
        return self

    def stop(self) -> LoadReport:
        self.loop.call_soon_threadsafe(self.load.stop)
        self.thread.join(timeout=120)
        assert self.report is not None, "the load did not stop"
        return self.report

    def __exit__(self, *exc: object) -> None:
        if self.thread.is_alive():
            self.stop()


def load_products(platform: Platform, count: int = 6) -> list[str]:
    """Products for the load (from the end of the catalogue, so the journeys' first product keeps
    its stock to themselves), restocked by the admin so checkouts never run out."""
    with platform.client() as http:
        signed = http.post(
            "/api/v1/auth/token",
            json={"email": platform.admin_email, "password": platform.admin_password},
        )
        assert signed.status_code == 200, signed.text
        admin = {"Authorization": f"Bearer {signed.json()['accessToken']}"}
        listed = http.get("/api/v1/products", params={"pageSize": 50})
        assert listed.status_code == 200, listed.text
        ids = [item["id"] for item in listed.json()["items"]][-count:]
        for product_id in ids:
            patched = http.patch(
                f"/api/v1/products/{product_id}", headers=admin, json={"stock": 1_000_000}
            )
            assert patched.status_code == 200, patched.text
    return ids
