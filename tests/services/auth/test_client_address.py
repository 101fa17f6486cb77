"""The client's address behind a proxy: X-Forwarded-For counts only when the connection comes from
a configured trusted proxy (TRUSTED_PROXIES), so the sign-in limit per client counts real clients
behind an ingress, and a client cannot pick its own address by sending the header itself. Real
HTTP to the service process's uvicorn, with the options the service itself starts with."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import run_service, service_settings

LIMIT = 3
WRONG = {"email": "nobody@example.com", "password": "not the password"}


async def attempts(auth, forwarded_for: str | None, count: int) -> list[int]:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    codes = []
    for _ in range(count):
        response = await auth.client.post("/api/v1/auth/token", json=WRONG, headers=headers)
        codes.append(response.status_code)
    return codes


def auth_settings(mongo_server, db_prefix, keyrings, **overrides):
    """Auth with a small per-client limit (and a per-email one that never counts here)."""
    return service_settings(
        "auth",
        mongo_server,
        db_prefix,
        keyrings,
        signin_limit_per_client=LIMIT,
        signin_limit_per_email=100,
        **overrides,
    )


def logged_clients(caplog: pytest.LogCaptureFixture) -> list[str | None]:
    return [getattr(r, "client", None) for r in caplog.records if r.getMessage() == "request"]


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(
    mongo_server, db_prefix, keyrings, caplog: pytest.LogCaptureFixture
) -> None:
    # A network written with its host bits set counts as the network.
    settings = auth_settings(mongo_server, db_prefix, keyrings, trusted_proxies=("127.0.0.9/8",))
    async with run_service(settings) as auth:
        caplog.set_level(logging.INFO, logger="checkout.access")
        assert await attempts(auth, "198.51.100.7", LIMIT + 1) == [401] * LIMIT + [429]
        # Another client behind the same proxy is not held back by the first one.
        assert await attempts(auth, "198.51.100.8", 1) == [401]
        # What the client itself put in front of the chain is not its address: the proxy appended
        # the real one, the right-most address that is not a trusted proxy.
        assert await attempts(auth, "203.0.113.1, 198.51.100.7", 1) == [429]
        assert await attempts(auth, "198.51.100.7, 198.51.100.9", 1) == [401]
    # The access log names the forwarded client, not the proxy.
    assert set(logged_clients(caplog)) == {"198.51.100.7", "198.51.100.8", "198.51.100.9"}


async def test_without_a_trusted_proxy_the_header_is_ignored(
    mongo_server, db_prefix, keyrings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = auth_settings(mongo_server, db_prefix, keyrings)
    async with run_service(settings) as auth:
        caplog.set_level(logging.INFO, logger="checkout.access")
        # Every "client" is the connection's own address: one budget, whatever the header says.
        codes = [(await attempts(auth, f"198.51.100.{n}", 1))[0] for n in range(1, LIMIT + 2)]
        assert codes == [401] * LIMIT + [429]
    logged = logged_clients(caplog)
    assert logged and set(logged) == {"127.0.0.1"}, json.dumps(logged)
