"""The storefront's pages over plain HTTP (no browser): the whole platform as local processes,
the storefront in front, and a client that keeps cookies like a browser."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.local.mongo_server import MongoServer
from services.local.platform import PROCESSES, LocalPlatform

PASSWORD = "correct horse battery"
FAST_AUTH = {
    "ARGON2_TIME_COST": "1",
    "ARGON2_MEMORY_KIB": "8192",
    "CASCADE_POLL_SECONDS": "0.2",
    "CASCADE_RETRY_MAX_SECONDS": "0.5",
    # Every shopper signs in from 127.0.0.1 (through the storefront and the tests' own API
    # calls); the per-email limit, which some tests reach, stays at its default.
    "SIGNIN_LIMIT_PER_CLIENT": "10000",
}


def shop_platform(mongo_server: MongoServer, folder: Path, label: str) -> LocalPlatform:
    """The four services and the storefront as local processes (not started yet) on the
    session's database server, in databases of their own, the sample catalogue loaded; fast
    password hashing and a quick deletion cascade. Service calls keep their production timeouts
    and retries: a stopped service refuses connections at once, and a loaded machine must not
    turn a slow checkout into a 503."""
    return LocalPlatform(
        folder,
        mongo=mongo_server,
        db_prefix=label + uuid.uuid4().hex[:8] + "_",
        services=PROCESSES,
        service_env={"auth": dict(FAST_AUTH)},
    )


@pytest.fixture(scope="module")
def shop(
    mongo_server: MongoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPlatform]:
    with shop_platform(mongo_server, tmp_path_factory.mktemp("shop"), "s") as running:
        yield running


CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


@dataclass
class Visitor:
    """A browser without JavaScript: cookies kept, redirects not followed (tests look at them)."""

    http: httpx.Client

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return self.http.get(path, **kwargs)  # type: ignore[arg-type]

    def csrf(self) -> str:
        # A page's hidden field carries the CSRF cookie's value; a first visit gets both.
        if cookie := self.http.cookies.get("csrftoken"):
            return cookie
        found = CSRF.search(self.get("/signin").text)
        assert found, "no CSRF field on the sign-in page"
        return found.group(1)

    def post(self, path: str, data: dict[str, str], **kwargs: object) -> httpx.Response:
        return self.http.post(path, data={"_csrf_token": self.csrf(), **data}, **kwargs)  # type: ignore[arg-type]

    def register(self, email: str | None = None, name: str = "Pat") -> str:
        email = email or f"shopper-{uuid.uuid4().hex[:10]}@example.test"
        answer = self.post("/register", {"email": email, "password": PASSWORD, "name": name})
        assert answer.status_code == 303, answer.text
        return email

    @property
    def token(self) -> str:
        return self.http.cookies.get("session") or ""


@pytest.fixture
def visitor(shop: LocalPlatform) -> Iterator[Visitor]:
    with httpx.Client(base_url=shop.urls["storefront"], timeout=15) as http:
        yield Visitor(http)


@pytest.fixture(scope="module")
def admin(shop: LocalPlatform) -> Iterator[httpx.Client]:
    """The services' APIs as the platform's admin (to change prices and stock behind the shop)."""
    with httpx.Client(timeout=15) as http:
        answer = http.post(
            shop.urls["auth"] + "/api/v1/auth/token",
            json={"email": shop.admin_email, "password": shop.admin_password},
        )
        answer.raise_for_status()
        http.headers["Authorization"] = "Bearer " + answer.json()["accessToken"]
        yield http


def product_ids(visitor: Visitor, query: str = "") -> list[str]:
    return re.findall(r'<h2><a href="/products/([A-Za-z0-9_-]+)">', visitor.get("/" + query).text)
