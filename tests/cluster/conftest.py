"""Helpers of the cluster tests: a small HTTP server workload made from the Python image the node
already holds. The fixtures `kind_cluster` and `namespace` live in tests/conftest.py, shared with
the platform's end-to-end tests (tests/e2e_kind)."""

from __future__ import annotations

from typing import Any

from tests.infra.kind import KindCluster

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
