"""Shared fixtures: one real MongoDB-protocol server per test session, a database per test,
keyring files, and services served on real localhost sockets."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar

from services.kit.settings import ServiceSettings
from services.local.mongo_server import (
    ENGINES,
    EngineError,
    MongoServer,
    default_engine,
    engine_from_env,
    find_or_start_mongo,
)
from tests.infra.keys import Keyrings
from tests.infra.kind import (
    RUN_ID_VARIABLE,
    KindCluster,
    delete_if_created,
    ensure_cluster,
    figures,
    missing_prerequisites,
)
from tests.infra.servers import serve_app


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    # One id per run, set before pytest-xdist starts its workers (they inherit the environment):
    # the worker that makes the kind cluster records it, and the controller deletes that cluster.
    if _is_controller(config):
        os.environ.setdefault(RUN_ID_VARIABLE, uuid.uuid4().hex)


def pytest_report_header(config: pytest.Config) -> str | None:
    # Which server the tests' MongoDB fixtures get, decided (and mongo-java-server's jar built,
    # the first time on a machine) once here, before pytest-xdist starts its workers.
    if not _is_controller(config):
        return None
    if os.environ.get("MONGO_URI"):
        return "database: MONGO_URI (an external server)"
    try:
        engine = engine_from_env() or default_engine()
    except EngineError as exc:
        return f"database: none can start: {exc}"
    return f"database engine: {engine}, {ENGINES[engine]}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _is_controller(session.config):
        delete_if_created(os.environ[RUN_ID_VARIABLE])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # The figures the cluster tests measured (time to Ready, requests and failures under load),
    # whichever worker measured them, printed once at the end of the run.
    if not _is_controller(terminalreporter.config):
        return
    lines = figures(os.environ.get(RUN_ID_VARIABLE, ""))
    if lines:
        terminalreporter.section("cluster figures")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def kind_cluster() -> KindCluster:
    """The run's kind cluster (tests/infra/kind.py), shared by every worker."""
    reason = missing_prerequisites()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the cluster tests cannot run under CI=true: {reason}")
        pytest.skip(f"no kind cluster here: {reason}")
    return ensure_cluster()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def namespace(kind_cluster: KindCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace on the kind cluster; its pods, events and logs are printed when the
    test fails, and it is deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kind_cluster.kubectl("create", "namespace", name)
    yield name
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        print(f"\n=== namespace {name} after the failure ===\n{kind_cluster.describe(name)}")
    kind_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[MongoServer]:
    server = find_or_start_mongo()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def db_prefix() -> str:
    # One database name per test (and per service within it): tests never see each other's data.
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def keyrings(tmp_path: Path) -> Keyrings:
    return Keyrings.create(tmp_path / "keys")


@dataclass
class RunningService:
    name: str
    url: str
    client: httpx.AsyncClient
    app: Litestar
    settings: ServiceSettings


def factory(name: str) -> tuple[type[ServiceSettings], Callable[[Any], Litestar]]:
    """Every service follows one layout: ``services.<name>.settings.<Name>Settings`` and
    ``services.<name>.app.create_app``."""
    settings_cls = getattr(
        importlib.import_module(f"services.{name}.settings"), f"{name.capitalize()}Settings"
    )
    create_app = importlib.import_module(f"services.{name}.app").create_app
    return settings_cls, create_app


FAST_HASHING = {"argon2_time_cost": 1, "argon2_memory_kib": 8192}


def service_settings(
    name: str, mongo: MongoServer, db_prefix: str, keyrings: Keyrings, **overrides: Any
) -> ServiceSettings:
    settings_cls, _ = factory(name)
    values: dict[str, Any] = {
        "service_name": name,
        "mongo_uri": mongo.uri,
        "mongo_db": f"{db_prefix}_{name}",
        "jwt_keyring_file": str(keyrings.jwt_file),
        "internal_keyring_file": str(keyrings.internal_file),
        "keyring_check_interval_seconds": 0.0,
    }
    if name == "auth":
        values.update(FAST_HASHING)
    values.update(overrides)
    return settings_cls(**values)


@contextlib.asynccontextmanager
async def run_service(settings: ServiceSettings) -> AsyncIterator[RunningService]:
    _, create_app = factory(settings.service_name)
    app = create_app(settings)
    async with (
        serve_app(app, settings) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        await wait_ready(client)
        yield RunningService(settings.service_name, url, client, app, settings)


async def wait_ready(client: httpx.AsyncClient, attempts: int = 200) -> None:
    for _ in range(attempts):
        if (await client.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(
        f"{client.base_url} never became ready: {(await client.get('/readyz')).text}"
    )


@pytest.fixture
async def auth(
    mongo_server: MongoServer, db_prefix: str, keyrings: Keyrings
) -> AsyncIterator[RunningService]:
    async with run_service(service_settings("auth", mongo_server, db_prefix, keyrings)) as svc:
        yield svc


@pytest.fixture
async def start_service(
    mongo_server: MongoServer, db_prefix: str, keyrings: Keyrings
) -> Callable[..., contextlib.AbstractAsyncContextManager[RunningService]]:
    """``async with start_service("cart", product_url=...) as cart:`` runs any service."""

    def start(
        name: str, **overrides: Any
    ) -> contextlib.AbstractAsyncContextManager[RunningService]:
        return run_service(service_settings(name, mongo_server, db_prefix, keyrings, **overrides))

    return start


@pytest.fixture
async def product(
    mongo_server: MongoServer, db_prefix: str, keyrings: Keyrings
) -> AsyncIterator[RunningService]:
    async with run_service(service_settings("product", mongo_server, db_prefix, keyrings)) as svc:
        yield svc
