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
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

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
            self.report.failures[str(response.status_code)] += 1
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
