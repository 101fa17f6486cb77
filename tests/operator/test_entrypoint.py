"""The operator as its image runs it: ``kopf run --standalone -m checkout_operator`` in its own
process, configured by environment variables only, stopped by SIGTERM as Kubernetes stops a pod."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.infra.helm import Helm
from tests.infra.kubeapi import KubeAPIServer
from tests.operator.cluster import (
    OWNER_LABEL,
    REPO_ROOT,
    WORKLOADS,
    Cluster,
    Scrape,
    sample_checkout,
    wait_until,
)

KOPF = Path(sys.executable).parent / "kopf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def operator_process(
    kube_api: KubeAPIServer, charts: Helm, namespace: str, cluster: Cluster, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], str, Path, int]]:
    port, metrics_port = free_port(), free_port()
    log_path = tmp_path / "operator.log"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        # As the image lays it out: the package on PYTHONPATH, the project installed.
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "operator"), str(REPO_ROOT)]),
        "CHECKOUT_CHARTS_DIR": str(charts.charts),
        "HELM_BINARY": str(charts.binary),
        "CHECKOUT_KUBECONFIG": str(kube_api.kubeconfig_path),
        "CHECKOUT_DRIFT_INTERVAL_SECONDS": "0.5",
        "CHECKOUT_WAIT_DELAY_SECONDS": "0.5",
        "CHECKOUT_METRICS_PORT": str(metrics_port),
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                str(KOPF),
                "run",
                "--standalone",
                "-m",
                "checkout_operator",
                f"--namespace={namespace}",
                f"--liveness=http://127.0.0.1:{port}/healthz",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            yield process, f"http://127.0.0.1:{port}/healthz", log_path, metrics_port
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_kopf_run_serves_and_stops_gracefully_on_sigterm(
    operator_process: tuple[subprocess.Popen[str], str, Path, int],
    cluster: Cluster,
    namespace: str,
) -> None:
    process, liveness, log_path, metrics_port = operator_process

    def alive() -> bool:
        assert process.poll() is None, log_path.read_text()
        try:
            return httpx.get(liveness, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(alive, timeout=30, what="the liveness endpoint")
    cluster.create_checkout(namespace, sample_checkout())
    wait_until(
        lambda: len(cluster.list("Deployment", namespace, f"{OWNER_LABEL}=shop")) == len(WORKLOADS),
        what="the four services' Deployments and the storefront's",
    )

    # The metrics endpoint on the port of its environment variable.
    wait_until(
        lambda: Scrape.of(f"http://127.0.0.1:{metrics_port}/metrics").value(
            "checkout_operator_checkout_phase",
            namespace=namespace,
            checkout="shop",
            phase="Progressing",
        ),
        what="the Checkout's phase on /metrics",
    )

    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"no exit within 20 s of SIGTERM:\n{log_path.read_text()[-3000:]}")
    log = log_path.read_text()
    assert code == 0, log[-3000:]
    assert "API client closed after" in log
