"""Auth and product on real sockets, reading keyrings from a local-mode keys folder, and a
traffic generator that records every request made while a ring is rotated."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from services.keys.keyring import (
    KeyRing,
    KeyringDocument,
    generate_key,
    read_keyring_document,
    write_keyring_document,
)
from services.keys.report import RingName
from services.keys.rotation import RotationPolicy
from services.kit.http import ServiceClient
from services.local.rotation import FileRotation, ring_file, state_path
from tests.conftest import RunningService

# Auth's token lifetime here: far below the 60 s floor of its environment setting, so a JWT
# rotation (which waits for the lifetime plus the verifiers' 5 s leeway) takes seconds. Long
# enough that a token issued just before the promotion is still used a second after it even
# when the machine is busy (at 3 s a loaded CI run once saw no such use).
TOKEN_TTL = 6
LEEWAY = 5
ADMIN_EMAIL = "admin@rotation.test"
ADMIN_PASSWORD = "rotation admin password"


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def expiry_of(token: str) -> float:
    return float(jwt.decode(token, options={"verify_signature": False})["exp"])


def fast_policy(ring: RingName) -> RotationPolicy:
    if ring == "jwt":
        return RotationPolicy.for_jwt(
            TOKEN_TTL, leeway_seconds=LEEWAY, margin=1, propagation_delay=3, poll_interval=0.1
        )
    return RotationPolicy.for_internal(margin=1, propagation_delay=3, poll_interval=0.1)


@dataclass
class Pair:
    keys_dir: Path
    auth: RunningService
    product: RunningService
    product_id: str = ""

    @property
    def urls(self) -> list[str]:
        return [self.auth.url, self.product.url]

    def ring(self, ring: RingName) -> KeyringDocument:
        return read_keyring_document(ring_file(self.keys_dir, ring))

    def rotation(
        self, ring: RingName, *, urls: list[str] | None = None, lines: list[str] | None = None
    ) -> FileRotation:
        out = lines if lines is not None else []
        return FileRotation(
            ring=ring,
            ring_file=ring_file(self.keys_dir, ring),
            internal_ring_file=ring_file(self.keys_dir, "internal"),
            service_urls=self.urls if urls is None else urls,
            policy=fast_policy(ring),
            state_file=state_path(self.keys_dir, ring),
            say=out.append,
        )

    async def sign_in(self, client: httpx.AsyncClient) -> tuple[str, str]:
        response = await client.post(
            self.auth.url + "/api/v1/auth/token",
            json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        return body["accessToken"], body["user"]["id"]

    async def reports(self, client: httpx.AsyncClient, key: str) -> list[dict[str, Any]]:
        out = []
        for url in self.urls:
            response = await client.get(
                url + "/internal/v1/keys", headers={"X-Internal-Api-Key": key}
            )
            assert response.status_code == 200, response.text
            out.append(response.json())
        return out


@pytest.fixture
async def pair(
    start_service: Callable[..., contextlib.AbstractAsyncContextManager[RunningService]],
    tmp_path: Path,
) -> AsyncIterator[Pair]:
    keys_dir = tmp_path / "keys"
    for ring, kid in (("jwt", "jwt-1"), ("internal", "api-1")):
        write_keyring_document(
            ring_file(keys_dir, ring),  # type: ignore[arg-type]
            KeyringDocument(active=kid, keys=[generate_key(kid)]),
        )
    files = {
        "jwt_keyring_file": str(ring_file(keys_dir, "jwt")),
        "internal_keyring_file": str(ring_file(keys_dir, "internal")),
    }
    async with (
        start_service("product", **files) as product,
        start_service(
            "auth",
            access_token_ttl_seconds=TOKEN_TTL,
            bootstrap_admin_email=ADMIN_EMAIL,
            bootstrap_admin_password=ADMIN_PASSWORD,
            signin_limit_per_email=100_000,
            signin_limit_per_client=100_000,
            **files,
        ) as auth,
    ):
        running = Pair(keys_dir, auth, product)
        async with httpx.AsyncClient(timeout=10) as client:
            token, _ = await running.sign_in(client)
            response = await client.post(
                product.url + "/api/v1/products/",
                headers={"Authorization": f"Bearer {token}"},
                json={
                    "sku": "ROT-" + uuid.uuid4().hex[:8].upper(),
                    "name": "Rotation probe",
                    "category": "test",
                    "priceCents": 100,
                    "stock": 1000,
                },
            )
            assert response.status_code == 201, response.text
            running.product_id = response.json()["id"]
        yield running


@dataclass
class Traffic:
    """Signs in, uses every live token (until it expires) against both services, and calls
    product's internal API the way another service does (the internal ring's active key)."""

    pair: Pair
    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    #: (time, kid) of every successful request made with a token
    token_uses: list[tuple[float, str]] = field(default_factory=list)
    issued_kids: list[str] = field(default_factory=list)
    internal_ok: int = 0

    def _record(self, what: str, response: httpx.Response, expected: int = 200) -> bool:
        self.sent += 1
        self.statuses[f"{what} {response.status_code}"] += 1
        if response.status_code != expected:
            self.failures.append(f"{what}: {response.status_code} {response.text[:200]}")
            return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        internal = KeyRing(ring_file(self.pair.keys_dir, "internal"), check_interval=0)
        caller = ServiceClient("product", self.pair.product.url, internal_keys=internal, retries=0)
        live: list[tuple[str, str, float]] = []
        n = 0
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                while not stop.is_set():
                    n += 1
                    response = await client.post(
                        self.pair.auth.url + "/api/v1/auth/token",
                        json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
                    )
                    if self._record("sign-in", response):
                        body = response.json()
                        token = body["accessToken"]
                        self.issued_kids.append(kid_of(token))
                        live.append((token, body["user"]["id"], expiry_of(token)))
                    # A client uses a token until it expires, not after.
                    live = [entry for entry in live if entry[2] - 0.3 > time.time()]
                    for token, user_id, _ in live:
                        headers = {"Authorization": f"Bearer {token}"}
                        ok = self._record(
                            "auth user",
                            await client.get(
                                f"{self.pair.auth.url}/api/v1/users/{user_id}", headers=headers
                            ),
                        )
                        ok &= self._record(
                            "product update",
                            await client.patch(
                                f"{self.pair.product.url}/api/v1/products/{self.pair.product_id}",
                                headers=headers,
                                json={"priceCents": 100 + n % 50},
                            ),
                        )
                        if ok:
                            self.token_uses.append((time.time(), kid_of(token)))
                    reservation = f"rot-{uuid.uuid4().hex}"
                    response = await caller.request(
                        "POST",
                        "/internal/v1/reservations/",
                        json={
                            "reservationId": reservation,
                            "items": [{"productId": self.pair.product_id, "quantity": 1}],
                        },
                        internal=True,
                    )
                    if self._record("internal reserve", response):
                        response = await caller.request(
                            "POST",
                            f"/internal/v1/reservations/{reservation}/release",
                            internal=True,
                        )
                        if self._record("internal release", response):
                            self.internal_ok += 1
                    await asyncio.sleep(0.05)
        finally:
            await caller.aclose()


@pytest.fixture
def traffic(pair: Pair) -> Traffic:
    return Traffic(pair)


@contextlib.asynccontextmanager
async def running(traffic: Traffic) -> AsyncIterator[Traffic]:
    stop = asyncio.Event()
    task = asyncio.create_task(traffic.run(stop))
    try:
        # Some traffic before the rotation starts: at least one token signed with the old key
        # (on a loaded machine the first sign-in can take longer than a fixed pause).
        deadline = time.monotonic() + 30
        await asyncio.sleep(0.5)
        while not traffic.issued_kids and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        yield traffic
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
