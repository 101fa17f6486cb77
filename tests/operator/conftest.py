"""Fixtures for operator tests: one real kube-apiserver (with etcd) per test session (so per
xdist worker), the Checkout CRD installed once, a fresh namespace per test, and the operator
(kopf, for real) running in the background for a test's duration.

Nothing global is set (no KUBECONFIG in the environment): the operator is handed its settings,
including the kubeconfig, through kopf's ``memo``. See `tests.infra.kubeapi` for what this control
plane does not run (no controller-manager, scheduler or kubelet).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import kopf
import pytest
from checkout_operator.config import OperatorConfig
from checkout_operator.reconcile import Runtime
from kubernetes.dynamic import DynamicClient

from tests.infra.helm import Helm, helm_path, prepared_helm
from tests.infra.kubeapi import KubeAPIServer, async_kube_client, kube_client
from tests.operator.cluster import Cluster, admin_api, install_crds

__all__ = ["async_kube_client", "kube_client"]

# Short intervals keep the suite fast; production defaults are in OperatorConfig.
DRIFT_INTERVAL = 0.5
WAIT_DELAY = 0.5


@pytest.fixture(scope="session")
def kube_api() -> Iterator[KubeAPIServer]:
    with KubeAPIServer() as server:
        yield server


@pytest.fixture
def kube(kube_api: KubeAPIServer) -> Iterator[httpx.Client]:
    """A sync client authenticated as the cluster admin."""
    with kube_client(kube_api) as client:
        yield client


def _create_namespace(client: httpx.Client) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    created = client.post(
        "/api/v1/namespaces",
        json={
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"checkout.platform.io/test": "true"}},
        },
    )
    created.raise_for_status()
    return name


def _delete_namespace(client: httpx.Client, name: str) -> None:
    deleted = client.delete(f"/api/v1/namespaces/{name}")
    if deleted.status_code not in (200, 202, 404):
        deleted.raise_for_status()


@pytest.fixture
def namespace(kube_api: KubeAPIServer) -> Iterator[str]:
    """A new namespace with a random name, deleted after the test.

    With no namespace controller running, a deleted namespace stays ``Terminating`` and its
    objects stay in etcd; the random name keeps tests apart all the same.
    """
    with kube_client(kube_api) as client:
        name = _create_namespace(client)
        try:
            yield name
        finally:
            _delete_namespace(client, name)


@pytest.fixture
def other_namespace(kube_api: KubeAPIServer) -> Iterator[str]:
    with kube_client(kube_api) as client:
        name = _create_namespace(client)
        try:
            yield name
        finally:
            _delete_namespace(client, name)


@pytest.fixture(scope="session")
def admin(kube_api: KubeAPIServer) -> Iterator[DynamicClient]:
    """The official client's dynamic client, as the cluster admin."""
    api = admin_api(kube_api)
    yield api
    api.client.close()


@pytest.fixture(scope="session")
def crds_installed(admin: DynamicClient) -> None:
    install_crds(admin)


@pytest.fixture(scope="session")
def charts(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """A dependency-built copy of charts/ and the pinned helm: what the operator image holds."""
    helm_path()
    return prepared_helm(tmp_path_factory.mktemp("operator-helm"))


@pytest.fixture
def cluster(admin: DynamicClient, kube_api: KubeAPIServer, crds_installed: None) -> Cluster:
    return Cluster(admin, kube_api)


BACKUP_IMAGE = "registry.example.com/checkout/operator:0.1.0"


@pytest.fixture
def operator_config(kube_api: KubeAPIServer, charts: Helm) -> OperatorConfig:
    return OperatorConfig(
        charts_dir=charts.charts,
        helm_binary=charts.binary,
        default_images={
            "auth": "registry.example.com/checkout/auth:0.1.0",
            "product": "registry.example.com/checkout/product:0.1.0",
            "cart": "registry.example.com/checkout/cart:0.1.0",
            "order": "registry.example.com/checkout/order:0.1.0",
            "storefront": "registry.example.com/checkout/storefront:0.1.0",
        },
        backup_image=BACKUP_IMAGE,
        kubeconfig=kube_api.kubeconfig_path,
        drift_interval=DRIFT_INTERVAL,
        wait_delay=WAIT_DELAY,
        request_timeout=15.0,
        watch_server_timeout=30.0,
        # No metrics endpoint unless a test asks for one on a free port (tests/operator/
        # test_metrics.py): operators of parallel runs would all want the default port.
        metrics_port=0,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclasses.dataclass
class RunningOperator:
    """kopf running ``checkout_operator`` in a thread with its own event loop."""

    memo: kopf.Memo
    liveness_url: str
    namespaces: tuple[str, ...]

    @property
    def runtime(self) -> Runtime:
        runtime = self.memo.get("runtime")
        assert isinstance(runtime, Runtime), "the operator has not started"
        return runtime


@contextlib.contextmanager
def run_operator(
    config: OperatorConfig | None, namespaces: tuple[str, ...]
) -> Iterator[RunningOperator]:
    """kopf in a thread until the block ends; with ``config`` None it reads its environment."""
    import checkout_operator  # noqa: F401  (registers the handlers in kopf's default registry)

    memo = kopf.Memo() if config is None else kopf.Memo(config=config)
    port = _free_port()
    running = RunningOperator(memo, f"http://127.0.0.1:{port}/healthz", namespaces)
    ready: concurrent.futures.Future[bool] = concurrent.futures.Future()
    stoppers: list[Callable[[], None]] = []
    failure: list[BaseException] = []

    async def serve() -> None:
        # The stop flag is an asyncio.Event of the operator's own loop, set from this thread
        # through the loop: kopf waits for a threading.Event (or a concurrent Future) in an
        # executor thread, which keeps asyncio.run() from returning when the operator fails
        # before anyone sets it.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        stoppers.append(lambda: loop.call_soon_threadsafe(stop.set))
        await kopf.operator(
            registry=kopf.get_default_registry(),
            settings=kopf.OperatorSettings(),
            memo=memo,
            namespaces=list(namespaces),
            standalone=True,
            liveness_endpoint=running.liveness_url,
            ready_flag=ready,
            stop_flag=stop,
        )

    def main() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:
            failure.append(exc)
            if not ready.done():
                ready.set_result(False)

    thread = threading.Thread(target=main, name="kopf-operator", daemon=True)
    thread.start()
    try:
        try:
            ready.result(30)
        except concurrent.futures.TimeoutError:
            pytest.fail("the operator did not start within 30 s")
        if failure:
            raise failure[0]
        yield running
    finally:
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop has just closed on its own
                stoppers[0]()
        thread.join(30)
        assert not thread.is_alive(), "the operator did not stop within 30 s"
    if failure:
        raise failure[0]


@pytest.fixture
def start_operator(
    operator_config: OperatorConfig,
) -> Iterator[Callable[..., RunningOperator]]:
    """Start the operator watching the given namespaces; stopped at the end of the test."""
    with contextlib.ExitStack() as stack:

        def start(*namespaces: str, **overrides: Any) -> RunningOperator:
            config = dataclasses.replace(operator_config, **overrides)
            return stack.enter_context(run_operator(config, namespaces))

        yield start


@pytest.fixture
def operator(
    start_operator: Callable[..., RunningOperator], namespace: str, cluster: Cluster
) -> RunningOperator:
    return start_operator(namespace)


@pytest.fixture(autouse=True)
def _quiet_kopf() -> Iterator[None]:
    # kopf logs every watch event at DEBUG; keep failures' captured logs readable.
    logger = logging.getLogger("kopf")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)
