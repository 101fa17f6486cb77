"""Register and sign in through HTTP against the real MongoDB-protocol server."""

from __future__ import annotations

import asyncio

import jwt
import pytest

from tests.conftest import RunningService, run_service, service_settings

PASSWORD = "correct horse battery"


async def register(auth: RunningService, email: str, password: str = PASSWORD) -> dict:
    response = await auth.client.post(
        "/api/v1/auth/register", json={"email": email, "password": password}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def sign_in(auth: RunningService, email: str, password: str = PASSWORD) -> dict:
    response = await auth.client.post(
        "/api/v1/auth/token", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_register_normalises_email_and_hides_the_hash(auth: RunningService) -> None:
    user = await register(auth, "  Alice@Example.COM ")
    assert user["email"] == "alice@example.com"
    assert user["role"] == "customer"
    assert set(user) == {"id", "email", "role", "createdAt", "name"}
    stored = await auth.app.state.db.users.find_one({"email": "alice@example.com"})
    assert stored["passwordHash"].startswith("$argon2id$")


async def test_duplicate_email_is_a_409_problem(auth: RunningService) -> None:
    await register(auth, "bob@example.com")
    response = await auth.client.post(
        "/api/v1/auth/register", json={"email": "BOB@example.com", "password": PASSWORD}
    )
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 409 and body["title"] == "Conflict"
    assert await auth.app.state.db.users.count_documents({}) == 1


@pytest.mark.parametrize("password", ["short", "x" * 129])
async def test_password_length_bounds(auth: RunningService, password: str) -> None:
    response = await auth.client.post(
        "/api/v1/auth/register", json={"email": "c@example.com", "password": password}
    )
    assert response.status_code == 400
    assert "password" in response.json()["detail"]
    assert await auth.app.state.db.users.count_documents({}) == 0


async def test_sign_in_returns_a_token_with_every_claim(auth: RunningService, keyrings) -> None:
    user = await register(auth, "dora@example.com")
    token = await sign_in(auth, "DORA@example.com")
    assert token["tokenType"] == "Bearer" and token["expiresIn"] == 900
    header = jwt.get_unverified_header(token["accessToken"])
    assert header == {"alg": "HS256", "kid": "jwt-1", "typ": "JWT"}
    claims = jwt.decode(
        token["accessToken"],
        keyrings.jwt_secret("jwt-1"),
        algorithms=["HS256"],
        audience="checkout-api",
        issuer="checkout-platform",
    )
    assert claims["sub"] == user["id"] and claims["role"] == "customer"
    assert claims["exp"] - claims["iat"] == 900
    assert len(claims["jti"]) == 32


async def test_wrong_password_and_unknown_email_look_the_same(auth: RunningService) -> None:
    await register(auth, "erin@example.com")
    wrong = await auth.client.post(
        "/api/v1/auth/token", json={"email": "erin@example.com", "password": "wrong password"}
    )
    unknown = await auth.client.post(
        "/api/v1/auth/token", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert wrong.headers["www-authenticate"].startswith("Bearer")


async def test_sign_in_is_rate_limited_per_email(mongo_server, db_prefix, keyrings) -> None:
    settings = service_settings("auth", mongo_server, db_prefix, keyrings, signin_limit_per_email=3)
    async with run_service(settings) as auth:
        await register(auth, "fay@example.com")
        body = {"email": "fay@example.com", "password": "not the password"}
        codes = [
            (await auth.client.post("/api/v1/auth/token", json=body)).status_code for _ in range(4)
        ]
        assert codes == [401, 401, 401, 429]
        limited = await auth.client.post(
            "/api/v1/auth/token", json={"email": "fay@example.com", "password": PASSWORD}
        )
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 61
        assert limited.json()["type"].endswith("/rate-limited")
        # Another email from the same client is not limited by fay's count.
        other = await auth.client.post(
            "/api/v1/auth/token", json={"email": "gus@example.com", "password": PASSWORD}
        )
        assert other.status_code == 401


async def test_sign_in_is_rate_limited_per_client(mongo_server, db_prefix, keyrings) -> None:
    settings = service_settings(
        "auth", mongo_server, db_prefix, keyrings, signin_limit_per_client=5
    )
    async with run_service(settings) as auth:
        bodies = [{"email": f"u{i}@example.com", "password": PASSWORD} for i in range(6)]
        codes = await asyncio.gather(
            *(auth.client.post("/api/v1/auth/token", json=b) for b in bodies)
        )
        assert sorted(r.status_code for r in codes) == [401] * 5 + [429]
