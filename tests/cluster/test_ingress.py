"""The ingress controller routes a host and path from 127.0.0.1 (kind's port mapping) to a pod."""

from __future__ import annotations

import httpx
import pytest

from tests.cluster.conftest import echo_deployment, service, wait_available
from tests.infra.kind import KindCluster

pytestmark = pytest.mark.cluster


def test_a_host_and_path_reach_the_pod_through_the_ingress(
    kind_cluster: KindCluster, namespace: str
) -> None:
    host = f"{namespace}.cluster.test"
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "echo"},
        "spec": {
            # No class named: the cluster's default IngressClass (Traefik) takes it.
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/echo",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "echo", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ]
        },
    }
    kind_cluster.apply([echo_deployment(kind_cluster, "echo"), service("echo"), ingress], namespace)
    wait_available(kind_cluster, namespace, "echo")
    (pod,) = kind_cluster.get("pods", "-n", namespace, "-l", "app=echo")["items"]

    with httpx.Client(base_url=f"http://127.0.0.1:{kind_cluster.http_port}", timeout=10) as client:

        def routed() -> httpx.Response | None:
            response = client.get("/echo/hello", headers={"Host": host})
            return response if response.status_code == 200 else None

        response = kind_cluster.wait_for(routed, timeout=60, what="the route is live")
        assert response.text == f"{pod['metadata']['name']} /echo/hello"
        # Only that host and that path are routed.
        assert client.get("/other", headers={"Host": host}).status_code == 404
        assert client.get("/echo/hello", headers={"Host": "elsewhere.test"}).status_code == 404
