"""Token verification, user lookups and deletion through HTTP."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from tests.conftest import RunningService
from tests.services.auth.test_register_signin import PASSWORD, register, sign_in


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def customer(auth: RunningService, email: str) -> tuple[dict, str]:
    user = await register(auth, email)
    return user, (await sign_in(auth, email))["accessToken"]


def forged(keyrings, **changes) -> str:
    now = int(time.time())
    claims = {
        "sub": "0" * 24,
        "role": "customer",
        "iat": now,
        "exp": now + 600,
        "iss": "checkout-platform",
        "aud": "checkout-api",
        "jti": uuid.uuid4().hex,
    }
    header = {"kid": "jwt-1"}
    key = keyrings.jwt_secret("jwt-1")
    alg = "HS256"
    for name, value in changes.items():
        if name == "kid":
            header["kid"] = value
        elif name == "key":
            key = value
        elif name == "alg":
            alg = value
        elif value is None:
            claims.pop(name)
        else:
            claims[name] = value
    return jwt.encode(claims, key, algorithm=alg, headers=header)


async def test_verify_returns_the_user(auth: RunningService) -> None:
    user, token = await customer(auth, "hal@example.com")
    response = await auth.client.get("/api/v1/auth/verify", headers=bearer(token))
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is True and body["user"]["id"] == user["id"]


def _none_alg_token() -> str:
    import base64
    import json

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"sub": "x", "role": "admin", "iat": now, "exp": now + 60}
    claims |= {"iss": "checkout-platform", "aud": "checkout-api", "jti": "j"}
    return part({"alg": "none", "kid": "jwt-1"}) + "." + part(claims) + "."


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda k: _none_alg_token(), id="alg-none"),
        pytest.param(lambda k: forged(k, alg="HS512", key=k.jwt_secret("jwt-1") * 2), id="hs512"),
        pytest.param(lambda k: forged(k, kid="jwt-unknown"), id="unknown-kid"),
        pytest.param(lambda k: forged(k, key=b"x" * 32), id="bad-signature"),
        pytest.param(lambda k: forged(k, aud="someone-else"), id="wrong-audience"),
        pytest.param(lambda k: forged(k, iss="evil"), id="wrong-issuer"),
        pytest.param(lambda k: forged(k, exp=int(time.time()) - 60), id="expired"),
        pytest.param(lambda k: forged(k, jti=None), id="missing-jti"),
        pytest.param(lambda k: forged(k, role="superuser"), id="unknown-role"),
        pytest.param(lambda k: "not.a.token", id="garbage"),
    ],
)
async def test_bad_tokens_are_refused(auth: RunningService, keyrings, make) -> None:
    response = await auth.client.get("/api/v1/auth/verify", headers=bearer(make(keyrings)))
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"] == "The token is invalid or expired."


async def test_missing_token_is_401(auth: RunningService) -> None:
    response = await auth.client.get("/api/v1/auth/verify")
    assert response.status_code == 401
    response = await auth.client.get("/api/v1/auth/verify", headers={"Authorization": "Basic x"})
    assert response.status_code == 401


async def test_users_see_themselves_and_admins_see_everyone(auth: RunningService) -> None:
    ivy, ivy_token = await customer(auth, "ivy@example.com")
    jon, _ = await customer(auth, "jon@example.com")
    own = await auth.client.get(f"/api/v1/users/{ivy['id']}", headers=bearer(ivy_token))
    assert own.status_code == 200 and own.json()["email"] == "ivy@example.com"
    other = await auth.client.get(f"/api/v1/users/{jon['id']}", headers=bearer(ivy_token))
    assert other.status_code == 403
    await auth.app.state.auth_service.ensure_admin("root@example.com", PASSWORD)
    admin_token = (await sign_in(auth, "root@example.com"))["accessToken"]
    seen = await auth.client.get(f"/api/v1/users/{jon['id']}", headers=bearer(admin_token))
    assert seen.status_code == 200 and seen.json()["id"] == jon["id"]
    for unknown in ("0" * 24, "not-an-object-id"):
        missing = await auth.client.get(f"/api/v1/users/{unknown}", headers=bearer(admin_token))
        assert missing.status_code == 404


async def test_deleting_yourself_ends_your_tokens_and_frees_the_email(auth: RunningService) -> None:
    kim, token = await customer(auth, "kim@example.com")
    deleted = await auth.client.delete(f"/api/v1/users/{kim['id']}", headers=bearer(token))
    assert deleted.status_code == 204
    assert (await auth.client.get("/api/v1/auth/verify", headers=bearer(token))).status_code == 401
    gone = await auth.client.post(
        "/api/v1/auth/token", json={"email": "kim@example.com", "password": PASSWORD}
    )
    assert gone.status_code == 401
    again = await register(auth, "kim@example.com")
    assert again["id"] != kim["id"]
    tombstone = await auth.app.state.db.users.find_one({"email": f"deleted:{kim['id']}"})
    assert tombstone["passwordHash"] is None
    assert sorted(tombstone["cascadePending"]) == ["cart", "order"]


async def test_customers_cannot_delete_others(auth: RunningService) -> None:
    _, lee_token = await customer(auth, "lee@example.com")
    max_user, _ = await customer(auth, "max@example.com")
    response = await auth.client.delete(
        f"/api/v1/users/{max_user['id']}", headers=bearer(lee_token)
    )
    assert response.status_code == 403
    assert await auth.app.state.db.users.count_documents({"deletedAt": None}) == 2
