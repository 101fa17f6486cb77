"""Forged, stale and misused credentials (issue 11, "JWT attack suite").

Each attack is refused with 401 problem+json by every service that checks tokens (auth's token
check, cart, order) and leaves a log record saying why. The services run once for the module; the
test that removes a key from the ring puts it back.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.keys.keyring import generate_key
from services.local.mongo_server import MongoServer
from tests.conftest import RunningService
from tests.infra.keys import Keyrings, write_ring
from tests.services.conftest import assert_problem, module_services
from tests.services.routes import OPERATIONS, SERVICES, Operation

ISSUER, AUDIENCE = "checkout-platform", "checkout-api"
PASSWORD = "correct horse battery"
SECURITY_LOGGER = "services.kit.security"
# Routes that take a user's bearer token, one per service that checks them.
USER_ROUTES = [
    ("auth", "/api/v1/auth/verify"),
    ("cart", "/api/v1/cart"),
    ("order", "/api/v1/orders"),
]


@dataclass
class Platform:
    services: dict[str, RunningService]
    keyrings: Keyrings
    user_id: str  # a customer who exists in auth


@pytest.fixture(scope="module")
async def platform(
    mongo_server: MongoServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    async with module_services(mongo_server, tmp_path_factory, "jwt") as (services, keyrings):
        registered = await services["auth"].client.post(
            "/api/v1/auth/register", json={"email": "mallory@example.com", "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        yield Platform(services, keyrings, registered.json()["id"])


# --- making tokens by hand ----------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encoded(part: dict[str, Any] | bytes) -> str:
    return b64(part if isinstance(part, bytes) else json.dumps(part).encode())


def hmac_sign(signing_input: str, secret: bytes, digest: Any = hashlib.sha256) -> str:
    return b64(hmac.new(secret, signing_input.encode("ascii"), digest).digest())


def claims(user_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "sub": user_id,
        "role": "customer",
        "iat": now,
        "exp": now + 600,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": uuid.uuid4().hex,
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def forge(
    header: dict[str, Any] | bytes,
    payload: dict[str, Any] | bytes,
    secret: bytes | None,
    digest: Any = hashlib.sha256,
) -> str:
    signing_input = f"{encoded(header)}.{encoded(payload)}"
    signature = "" if secret is None else hmac_sign(signing_input, secret, digest)
    return f"{signing_input}.{signature}"


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def tampered(p: Platform) -> str:
    """A real token whose payload says admin, with the signature of the customer's payload."""
    header, _, signature = p.keyrings.token(p.user_id).split(".")
    payload = encoded(claims(p.user_id, role="admin"))
    return f"{header}.{payload}.{signature}"


Attack = Callable[[Platform], str]
GOOD_KID = {"alg": "HS256", "typ": "JWT", "kid": "jwt-1"}


def secret(p: Platform) -> bytes:
    return p.keyrings.jwt_secret("jwt-1")


# Each attack: how to make the token, and what the log record's reason says.
ATTACKS: dict[str, tuple[Attack, str]] = {
    "alg-none": (
        lambda p: forge({"alg": "none", "kid": "jwt-1"}, claims(p.user_id), None),
        "'none'",
    ),
    "alg-None": (
        lambda p: forge({"alg": "None", "kid": "jwt-1"}, claims(p.user_id), None),
        "'None'",
    ),
    "alg-none-with-signature": (
        lambda p: forge({"alg": "none", "kid": "jwt-1"}, claims(p.user_id), secret(p)),
        "'none'",
    ),
    "alg-missing": (lambda p: forge({"kid": "jwt-1"}, claims(p.user_id), secret(p)), "None"),
    "alg-HS512-with-the-key": (
        lambda p: forge({**GOOD_KID, "alg": "HS512"}, claims(p.user_id), secret(p), hashlib.sha512),
        "'HS512'",
    ),
    "alg-RS256": (
        lambda p: jwt.encode(
            claims(p.user_id), RSA_KEY, algorithm="RS256", headers={"kid": "jwt-1"}
        ),
        "'RS256'",
    ),
    "alg-RS256-header-hmac-signed": (
        lambda p: forge({**GOOD_KID, "alg": "RS256"}, claims(p.user_id), secret(p)),
        "'RS256'",
    ),
    # The algorithm-confusion attack: public key material as the HMAC secret.
    "public-key-as-hmac-secret": (
        lambda p: forge(GOOD_KID, claims(p.user_id), RSA_PUBLIC_PEM),
        "Signature verification failed",
    ),
    "internal-key-as-hmac-secret": (
        lambda p: forge(GOOD_KID, claims(p.user_id), p.keyrings.internal_key().encode()),
        "Signature verification failed",
    ),
    "empty-hmac-secret": (
        lambda p: forge(GOOD_KID, claims(p.user_id), b""),
        "Signature verification failed",
    ),
    "kid-as-hmac-secret": (
        lambda p: forge(GOOD_KID, claims(p.user_id), b"jwt-1"),
        "Signature verification failed",
    ),
    "embedded-jwk": (
        lambda p: forge(
            {**GOOD_KID, "jwk": {"kty": "oct", "k": b64(b"attacker")}},
            claims(p.user_id),
            b"attacker",
        ),
        "Signature verification failed",
    ),
    "kid-path-like": (
        lambda p: forge({**GOOD_KID, "kid": "../../etc/passwd"}, claims(p.user_id), secret(p)),
        "unknown key id",
    ),
    "kid-path-to-keyring": (
        lambda p: forge(
            {**GOOD_KID, "kid": str(p.keyrings.jwt_file)}, claims(p.user_id), secret(p)
        ),
        "unknown key id",
    ),
    "kid-very-long": (
        lambda p: forge({**GOOD_KID, "kid": "k" * 20_000}, claims(p.user_id), secret(p)),
        "unknown key id",
    ),
    "kid-operator": (
        lambda p: forge({**GOOD_KID, "kid": {"$gt": ""}}, claims(p.user_id), secret(p)),
        "key id",
    ),
    "kid-number": (lambda p: forge({**GOOD_KID, "kid": 1}, claims(p.user_id), secret(p)), "key id"),
    "kid-null": (
        lambda p: forge({**GOOD_KID, "kid": None}, claims(p.user_id), secret(p)),
        "key id",
    ),
    "kid-list": (
        lambda p: forge({**GOOD_KID, "kid": ["jwt-1"]}, claims(p.user_id), secret(p)),
        "key id",
    ),
    "kid-empty": (lambda p: forge({**GOOD_KID, "kid": ""}, claims(p.user_id), secret(p)), "key id"),
    "kid-missing": (
        lambda p: forge({"alg": "HS256", "typ": "JWT"}, claims(p.user_id), secret(p)),
        "no key id",
    ),
    "kid-nul": (
        lambda p: forge({**GOOD_KID, "kid": "jwt-1\x00"}, claims(p.user_id), secret(p)),
        "unknown key id",
    ),
    "expired": (
        lambda p: forge(
            GOOD_KID,
            claims(p.user_id, iat=int(time.time()) - 700, exp=int(time.time()) - 60),
            secret(p),
        ),
        "expired",
    ),
    "no-expiry": (lambda p: forge(GOOD_KID, claims(p.user_id, exp=None), secret(p)), '"exp"'),
    "not-yet-valid-nbf": (
        lambda p: forge(GOOD_KID, claims(p.user_id, nbf=int(time.time()) + 3600), secret(p)),
        "not yet valid",
    ),
    "issued-in-the-future": (
        lambda p: forge(GOOD_KID, claims(p.user_id, iat=int(time.time()) + 3600), secret(p)),
        "not yet valid",
    ),
    "wrong-issuer": (
        lambda p: forge(GOOD_KID, claims(p.user_id, iss="evil-issuer"), secret(p)),
        "issuer",
    ),
    "wrong-audience": (
        lambda p: forge(GOOD_KID, claims(p.user_id, aud="another-api"), secret(p)),
        "audience",
    ),
    "no-audience": (lambda p: forge(GOOD_KID, claims(p.user_id, aud=None), secret(p)), '"aud"'),
    "tampered-payload": (tampered, "Signature verification failed"),
    "signature-stripped": (
        lambda p: p.keyrings.token(p.user_id).rsplit(".", 1)[0] + ".",
        "Signature",
    ),
    "header-nested-deeply": (
        lambda p: forge(b'{"alg":"HS256","kid":' + b"[" * 3000 + b"]" * 3000 + b"}", b"{}", None),
        "malformed",
    ),
    "header-not-utf8": (lambda p: forge(b'{"alg":"HS256","kid":"\xff"}', b"{}", None), "malformed"),
    "header-not-json": (lambda p: forge(b"not json", b"{}", None), "malformed"),
    "four-parts": (lambda p: p.keyrings.token(p.user_id) + ".extra", "malformed"),
    "internal-api-key-as-bearer": (lambda p: p.keyrings.internal_key(), "malformed"),
}


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == SECURITY_LOGGER and r.getMessage() == "token refused"
    ]


@pytest.mark.parametrize("attack", list(ATTACKS), ids=str)
async def test_attack_is_refused_and_logged(
    platform: Platform, caplog: pytest.LogCaptureFixture, attack: str
) -> None:
    make, reason = ATTACKS[attack]
    token = make(platform)
    for service, path in USER_ROUTES:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=SECURITY_LOGGER):
            response = await platform.services[service].client.get(
                path, headers={"Authorization": f"Bearer {token}"}
            )
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        records = refusals(caplog)
        assert len(records) == 1, (service, [r.getMessage() for r in caplog.records])
        logged: Any = records[0]
        assert reason.lower() in logged.reason.lower(), (service, logged.reason)
        assert logged.route == path
        # The log line stays short whatever the token carries.
        assert len(logged.reason) <= 300, len(logged.reason)


async def test_a_well_made_token_is_accepted(platform: Platform) -> None:
    # The attacks above are refused for what is wrong with them, not for something else.
    token = forge(GOOD_KID, claims(platform.user_id), secret(platform))
    for service, path in USER_ROUTES:
        response = await platform.services[service].client.get(
            path, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, (service, response.text)


async def test_a_key_removed_from_the_ring_no_longer_verifies(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    rings = platform.keyrings
    old_token = rings.token(platform.user_id)
    original = list(rings.jwt_entries)
    successor = generate_key("jwt-2")
    # Rotation's last step: the new key active, the old one gone.
    write_ring(rings.jwt_file, "jwt-2", [successor])
    try:
        for service, path in USER_ROUTES:
            caplog.clear()
            with caplog.at_level(logging.INFO, logger=SECURITY_LOGGER):
                response = await platform.services[service].client.get(
                    path, headers={"Authorization": f"Bearer {old_token}"}
                )
            assert_problem(response, 401)
            [record] = refusals(caplog)
            assert "unknown key id 'jwt-1'" in record.reason  # type: ignore[attr-defined]
    finally:
        write_ring(rings.jwt_file, "jwt-1", original)
    # And back: the old key verifies again once it is in the ring (the test left no trace).
    response = await platform.services["cart"].client.get(
        "/api/v1/cart", headers={"Authorization": f"Bearer {old_token}"}
    )
    assert response.status_code == 200, response.text


async def test_a_deleted_users_token_is_refused_everywhere(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    auth, cart = platform.services["auth"], platform.services["cart"]
    email = f"gone-{uuid.uuid4().hex[:8]}@example.com"
    registered = await auth.client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    signed_in = await auth.client.post(
        "/api/v1/auth/token", json={"email": email, "password": PASSWORD}
    )
    user_id, token = registered.json()["id"], signed_in.json()["accessToken"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await cart.client.get("/api/v1/cart", headers=bearer)).status_code == 200

    deleted = await auth.client.delete(f"/api/v1/users/{user_id}", headers=bearer)
    assert deleted.status_code == 204, deleted.text
    # Cart learns of the deletion through auth's cascade.
    for _ in range(200):
        if await cart.app.state.db.cart_lines.count_documents({"_id": f"deleted:{user_id}"}):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the deletion never reached cart")

    for service, path in [("auth", "/api/v1/auth/verify"), ("cart", "/api/v1/cart")]:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=SECURITY_LOGGER):
            response = await platform.services[service].client.get(path, headers=bearer)
        assert_problem(response, 401)
        [record] = refusals(caplog)
        assert record.reason == "subject deleted", record.reason  # type: ignore[attr-defined]
        assert record.sub == user_id  # type: ignore[attr-defined]


INTERNAL = [op for op in OPERATIONS if op.path.startswith("/internal/")]


def test_every_internal_route_needs_the_internal_key() -> None:
    # So the two tests below cover every way in to them.
    assert {op.service for op in INTERNAL} == set(SERVICES), INTERNAL
    for op in INTERNAL:
        assert "internal_caller" in op.dependencies, op.id


def concrete(path: str) -> str:
    return path.replace("{user_id}", "0" * 24).replace("{reservation_id}", "r-1")


def internal_refusals(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [
        r
        for r in caplog.records
        if r.name == SECURITY_LOGGER and r.getMessage() == "internal call refused"
    ]


@pytest.mark.parametrize("op", INTERNAL, ids=lambda op: op.id)
async def test_a_jwt_is_not_an_internal_api_key(
    platform: Platform, caplog: pytest.LogCaptureFixture, op: Operation
) -> None:
    admin_token = platform.keyrings.token(platform.user_id, "admin")
    client = platform.services[op.service].client
    path = concrete(op.path)
    attempts = {
        "bad key": {"X-Internal-Api-Key": admin_token},
        "no key": {"Authorization": f"Bearer {admin_token}"},
    }
    for reason, headers in attempts.items():
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=SECURITY_LOGGER):
            response = await client.request(op.method, path, headers=headers)
        assert_problem(response, 401)
        [record] = internal_refusals(caplog)
        assert record.reason == reason and record.path == path


async def test_the_internal_api_key_is_not_a_bearer_token(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    key = platform.keyrings.internal_key()
    for service, path in USER_ROUTES:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=SECURITY_LOGGER):
            response = await platform.services[service].client.get(
                path, headers={"Authorization": f"Bearer {key}"}
            )
        assert_problem(response, 401)
        assert len(refusals(caplog)) == 1


async def test_a_token_in_a_seed_path_is_kept_out_of_the_logs(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    # Seed 000's edit-quantity route takes the token as a path segment: neither a refused nor a
    # good one may reach the logs.
    forged = forge({"alg": "none", "kid": "jwt-1"}, claims(platform.user_id), None)
    good = platform.keyrings.token(platform.user_id)
    cart = platform.services["cart"]
    with caplog.at_level(logging.INFO):
        refused = await cart.client.get(
            f"/api/cart/edit-quantity/{forged}", params={"productId": "p1", "quantity": 1}
        )
        assert_problem(refused, 401)
        accepted = await cart.client.get(
            f"/api/cart/edit-quantity/{good}", params={"productId": "p1", "quantity": 1}
        )
        assert accepted.status_code == 404, accepted.text  # signed in; no such product in the cart
        # The access log is written once the answer has gone out. (Only these two requests':
        # the shared platform's cascade may call cart meanwhile.)
        for _ in range(100):
            access = [
                r
                for r in caplog.records
                if r.name == "checkout.access" and "/edit-quantity/" in r.path  # type: ignore[attr-defined]
            ]
            if len(access) >= 2:
                break
            await asyncio.sleep(0.01)
    [record] = refusals(caplog)
    assert "'none'" in record.reason  # type: ignore[attr-defined]
    assert record.route.startswith("/api/cart/edit-quantity/{token")  # type: ignore[attr-defined]
    assert [r.path for r in access] == ["/api/cart/edit-quantity/<token>"] * 2  # type: ignore[attr-defined]
    # Every record of the services (the test's own HTTP client logs its URLs, httpx aside).
    for logged in [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]:
        text = json.dumps(logged.__dict__, default=str)
        assert forged not in text and good not in text, logged.getMessage()
