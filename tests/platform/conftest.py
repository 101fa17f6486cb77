"""Cross-service tests: the four services as separate processes (local mode), over real sockets.

One platform per test module (starting four Python processes costs a few seconds); tests that
stop a service start it again before they end, so the next test finds everything running.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from services.local.mongo_server import MongoServer
from services.local.platform import LocalPlatform

T = TypeVar("T")
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def platform(
    mongo_server: MongoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPlatform]:
    prefix = "p" + uuid.uuid4().hex[:8] + "_"
    fast = {
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "8192",
        "CASCADE_POLL_SECONDS": "0.2",
        "CASCADE_RETRY_MAX_SECONDS": "0.5",
    }
    retries = {"HTTP_RETRIES": "1", "HTTP_BACKOFF_SECONDS": "0.02", "HTTP_TIMEOUT_SECONDS": "2"}
    with LocalPlatform(
        tmp_path_factory.mktemp("platform"),
        mongo=mongo_server,
        db_prefix=prefix,
        service_env={
            "auth": fast | retries,
            "product": retries,
            "cart": retries,
            "order": retries,
        },
    ) as running:
        yield running


@dataclass
class Shopper:
    """A customer (or admin) talking to the platform like a storefront would."""

    platform: LocalPlatform
    email: str
    password: str = PASSWORD
    token: str = ""
    user_id: str = ""
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=15))

    def url(self, service: str, path: str) -> str:
        return self.platform.urls[service] + path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def call(self, method: str, service: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = (
            {**self.auth, **kwargs.pop("headers", {})} if self.token else kwargs.pop("headers", {})
        )
        return self.http.request(method, self.url(service, path), headers=headers, **kwargs)

    def register(self) -> Shopper:
        response = self.call(
            "POST",
            "auth",
            "/api/v1/auth/register",
            json={"email": self.email, "password": self.password},
        )
        assert response.status_code == 201, response.text
        self.user_id = response.json()["id"]
        return self

    def sign_in(self) -> Shopper:
        response = self.http.post(
            self.url("auth", "/api/v1/auth/token"),
            json={"email": self.email, "password": self.password},
        )
        assert response.status_code == 200, response.text
        self.token = response.json()["accessToken"]
        self.user_id = response.json()["user"]["id"]
        return self


@pytest.fixture
def new_shopper(platform: LocalPlatform) -> Iterator[Callable[[], Shopper]]:
    made: list[Shopper] = []

    def make() -> Shopper:
        shopper = Shopper(platform, f"s-{uuid.uuid4().hex[:10]}@example.com").register().sign_in()
        made.append(shopper)
        return shopper

    yield make
    for shopper in made:
        shopper.http.close()


@pytest.fixture
def admin(platform: LocalPlatform) -> Iterator[Shopper]:
    shopper = Shopper(platform, platform.admin_email, platform.admin_password).sign_in()
    yield shopper
    shopper.http.close()


def eventually(check: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.1) -> T:
    """Call ``check`` until it returns a truthy value (or stops raising AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def internal_headers(platform: LocalPlatform) -> dict[str, str]:
    """The internal API key as services send it (the ring's active key)."""
    from services.keys.keyring import KeyRing

    return {"X-Internal-Api-Key": KeyRing(Path(platform.internal_keyring)).presentable_active()}
