"""Probes, metrics, OpenAPI, request ids, and failures that must not leak internals."""

from __future__ import annotations

from tests.conftest import RunningService, service_settings
from tests.services.auth.test_register_signin import register


async def test_probes(auth: RunningService) -> None:
    assert (await auth.client.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = (await auth.client.get("/readyz")).json()
    assert ready["status"] == "ready"
    assert ready["checks"] == {
        "database": True,
        "indexes": True,
        "jwtKeyring": True,
        "internalKeyring": True,
    }


async def test_metrics_count_requests(auth: RunningService) -> None:
    await register(auth, "metrics@example.com")
    text = (await auth.client.get("/metrics")).text
    assert "checkout_requests_total" in text
    assert 'path="/api/v1/auth/register"' in text


async def test_openapi_lists_clean_and_seed_operations(auth: RunningService) -> None:
    schema = (await auth.client.get("/schema/openapi.json")).json()
    operation_ids = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert {"register", "signIn", "verifyToken", "getUser", "deleteUser"} <= operation_ids
    assert {"seedSignIn", "seedLogin", "seedCreateUser"} <= operation_ids


async def test_request_id_is_echoed_or_made(auth: RunningService) -> None:
    echoed = await auth.client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    made = await auth.client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["x-request-id"] != "bad id with spaces"
    assert len(made.headers["x-request-id"]) == 32
    problem = await auth.client.get("/api/v1/auth/verify", headers={"X-Request-ID": "trace-9"})
    assert problem.json()["requestId"] == "trace-9"


async def test_database_down_is_503_without_internals(mongo_server, db_prefix, keyrings) -> None:
    settings = service_settings(
        "auth",
        mongo_server,
        db_prefix,
        keyrings,
        mongo_uri="mongodb://127.0.0.1:9/",
        mongo_timeout_seconds=0.3,
    )
    import httpx

    from services.auth.app import create_app
    from tests.infra.servers import serve_app

    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] is False
        response = await client.post(
            "/api/v1/auth/register", json={"email": "x@example.com", "password": "long enough"}
        )
        assert response.status_code == 503
        assert response.headers["retry-after"] == "2"
        assert "Traceback" not in response.text and "pymongo" not in response.text
