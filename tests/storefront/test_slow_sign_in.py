"""Registering and signing in wait for auth's password hash, which is slow by design and queued
behind other sign-ins: the storefront gives those two calls PASSWORD_TIMEOUT_SECONDS instead of
the services' HTTP_TIMEOUT_SECONDS. Here each hash takes longer than HTTP_TIMEOUT_SECONDS (auth
hashes one at a time with a high argon2 cost), and the shopper still registers and signs in; the
pages that call other services keep the short timeout.

On the kind cluster this was a failed page: a shopper registering while four others signed in
waited past the 3 s default behind auth's two hashing slots, and got "Something is temporarily
unavailable" (the register call is never retried: a sign-up is not idempotent)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from services.local.mongo_server import MongoServer
from services.local.platform import PROCESSES, LocalPlatform
from tests.storefront.conftest import FAST_AUTH, PASSWORD, Visitor

HTTP_TIMEOUT_SECONDS = 1.0
SLOW_AUTH = FAST_AUTH | {
    # About 1.6 s a hash on this machine's cores, one at a time.
    "ARGON2_TIME_COST": "10",
    "ARGON2_MEMORY_KIB": "262144",
    "PASSWORD_HASH_CONCURRENCY": "1",
}


@pytest.fixture(scope="module")
def slow_auth_shop(
    mongo_server: MongoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPlatform]:
    with LocalPlatform(
        tmp_path_factory.mktemp("slow-auth"),
        mongo=mongo_server,
        db_prefix="slowauth_",
        services=PROCESSES,
        service_env={
            "auth": SLOW_AUTH,
            "storefront": {"HTTP_TIMEOUT_SECONDS": str(HTTP_TIMEOUT_SECONDS)},
        },
    ) as running:
        yield running


def test_registering_and_signing_in_outlast_the_services_timeout(
    slow_auth_shop: LocalPlatform,
) -> None:
    with httpx.Client(base_url=slow_auth_shop.urls["storefront"], timeout=60) as http:
        visitor = Visitor(http)
        began = time.monotonic()
        email = visitor.register()
        took = time.monotonic() - began
        # The hash of the sign-up and the one of the sign-in after it, one at a time.
        assert took > HTTP_TIMEOUT_SECONDS, f"registering took only {took:.2f} s"
        page = visitor.get("/account")
        assert page.status_code == 200 and email in page.text and "Sign out" in page.text

        visitor.post("/signout", {})
        signed_in = visitor.post("/signin", {"email": email, "password": PASSWORD})
        assert signed_in.status_code == 303, signed_in.text
        assert visitor.get("/account").status_code == 200
