"""Fixtures of the cluster tests: the run's kind cluster (tests/infra/kind.py), a fresh namespace
per test (its pods, events and logs printed when the test fails), and a small HTTP server
workload made from the Python image the node already holds."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.kind import KindCluster, ensure_cluster, missing_prerequisites

# Answers every GET with "<pod name> <path>", so a test can tell which pod served it.
ECHO_SERVER = """
import http.server, socket
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{socket.gethostname()} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 8080), Echo).serve_forever()
"""

RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.fixture(scope="session")
def kind_cluster() -> KindCluster:
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
    name = f"t-{uuid.uuid4().hex[:10]}"
    kind_cluster.kubectl("create", "namespace", name)
    yield name
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        print(f"\n=== namespace {name} after the failure ===\n{kind_cluster.describe(name)}")
    kind_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def echo_deployment(
    cluster: KindCluster, name: str, replicas: int = 1, **pod_extra: Any
) -> dict[str, Any]:
    container = {
        "name": "echo",
        "image": cluster.python_image,
        "imagePullPolicy": cluster.pull_policy,
        "command": ["python", "-c", ECHO_SERVER],
        "ports": [{"containerPort": 8080, "name": "http"}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 2},
        "resources": {
            "requests": {"cpu": "10m", "memory": "32Mi"},
            "limits": {"cpu": "200m", "memory": "64Mi"},
        },
        "securityContext": RESTRICTED,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container], **pod_extra},
            },
        },
    }


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": "http"}]},
    }


def wait_available(cluster: KindCluster, namespace: str, name: str, timeout: float = 240) -> None:
    cluster.kubectl(
        "-n",
        namespace,
        "rollout",
        "status",
        f"deployment/{name}",
        f"--timeout={timeout:.0f}s",
        timeout=timeout + 30,
    )


def python_in_pod(cluster: KindCluster, namespace: str, target: str, code: str) -> str:
    """Run Python code inside a pod (``deployment/x`` or a pod name) and return what it printed."""
    return cluster.kubectl("-n", namespace, "exec", target, "--", "python", "-c", code).stdout
