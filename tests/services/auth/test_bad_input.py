"""Bad input gets a clear 4xx problem and writes nothing."""

from __future__ import annotations

import pytest

from tests.conftest import RunningService

PROBLEM = "application/problem+json"


@pytest.mark.parametrize(
    ("body", "expect_in_detail"),
    [
        pytest.param(b'{"email": "a@example.com", "password": ', "not valid JSON", id="malformed"),
        pytest.param(b'{"email": 42, "password": "long enough"}', "email", id="wrong-type"),
        pytest.param(b'{"password": "long enough"}', "email", id="missing-field"),
        pytest.param(b'{"email": {"$gt": ""}, "password": "long enough"}', "email", id="injection"),
        pytest.param(
            b'{"email": "a@example.com", "password": {"$ne": null}}', "password", id="inj2"
        ),
        pytest.param(
            b'{"email": "not-an-email", "password": "long enough"}', "email", id="bad-email"
        ),
        pytest.param(
            b'{"email": "a@example.com", "password": "long enough", "role": "admin"}',
            "role",
            id="unknown-field",
        ),
        pytest.param(b"[]", "", id="array"),
    ],
)
async def test_register_rejects_bad_bodies(
    auth: RunningService, body: bytes, expect_in_detail: str
) -> None:
    response = await auth.client.post(
        "/api/v1/auth/register", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["status"] == 400 and problem["title"] == "Bad Request"
    assert expect_in_detail in problem["detail"]
    assert "Traceback" not in response.text
    assert await auth.app.state.db.users.count_documents({}) == 0


async def test_sign_in_injection_is_rejected(auth: RunningService) -> None:
    response = await auth.client.post(
        "/api/v1/auth/token", json={"email": {"$gt": ""}, "password": {"$gt": ""}}
    )
    assert response.status_code == 400
    assert await auth.app.state.db.rate_limits.count_documents({}) == 0


async def test_oversized_body_is_413(auth: RunningService) -> None:
    body = {"email": "big@example.com", "password": "x" * 100, "name": "y" * 200_000}
    response = await auth.client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith(PROBLEM)
    assert await auth.app.state.db.users.count_documents({}) == 0


async def test_unknown_route_and_method(auth: RunningService) -> None:
    missing = await auth.client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith(PROBLEM)
    wrong = await auth.client.put("/api/v1/auth/register", json={})
    assert wrong.status_code == 405
    assert wrong.headers["content-type"].startswith(PROBLEM)
