"""Workloads through the real kubelet, Service routing through kube-proxy, cluster DNS, and
garbage collection by the controller manager."""

from __future__ import annotations

import json

import pytest

from tests.cluster.conftest import (
    echo_deployment,
    python_in_pod,
    service,
    wait_available,
)
from tests.infra.kind import KindCluster

pytestmark = pytest.mark.cluster


def test_a_deployments_pods_become_available(kind_cluster: KindCluster, namespace: str) -> None:
    kind_cluster.apply([echo_deployment(kind_cluster, "echo", replicas=2)], namespace)
    wait_available(kind_cluster, namespace, "echo")
    deployment = kind_cluster.get("deployment", "echo", "-n", namespace)
    assert deployment["status"]["availableReplicas"] == 2
    pods = kind_cluster.get("pods", "-n", namespace, "-l", "app=echo")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["podIP"].startswith("10.244.")
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] is True


def test_pod_to_cluster_ip_service_to_pod(kind_cluster: KindCluster, namespace: str) -> None:
    kind_cluster.apply(
        [
            echo_deployment(kind_cluster, "echo", replicas=2),
            service("echo"),
            echo_deployment(kind_cluster, "client"),
        ],
        namespace,
    )
    wait_available(kind_cluster, namespace, "echo")
    wait_available(kind_cluster, namespace, "client")
    cluster_ip = kind_cluster.get("service", "echo", "-n", namespace)["spec"]["clusterIP"]
    backends = {
        p["metadata"]["name"]
        for p in kind_cluster.get("pods", "-n", namespace, "-l", "app=echo")["items"]
    }
    # kube-proxy programs the Service a moment after its endpoints are ready: wait for the first
    # answer (bounded), then twenty requests in a row must all be answered by the Service's pods.
    code = (
        "import time, urllib.request\n"
        f"url = 'http://{cluster_ip}/hop/%d'\n"
        "for attempt in range(30):\n"
        "    try:\n"
        "        urllib.request.urlopen(url % -1, timeout=2).read()\n"
        "        break\n"
        "    except OSError:\n"
        "        time.sleep(1)\n"
        "for i in range(20):\n"
        "    print(urllib.request.urlopen(url % i, timeout=5).read().decode())"
    )
    lines = python_in_pod(kind_cluster, namespace, "deployment/client", code).splitlines()
    assert len(lines) == 20
    served_by = {line.split()[0] for line in lines}
    assert served_by <= backends
    assert [line.split()[1] for line in lines] == [f"/hop/{i}" for i in range(20)]


def test_cluster_dns_resolves_services_and_forwards_nothing(
    kind_cluster: KindCluster, namespace: str
) -> None:
    corefile = kind_cluster.get("configmap", "coredns", "-n", "kube-system")["data"]["Corefile"]
    # Checked first: with a forward plugin the lookup below could leave the machine.
    assert "forward" not in corefile, corefile
    kind_cluster.apply(
        [
            echo_deployment(kind_cluster, "echo"),
            service("echo"),
            echo_deployment(kind_cluster, "client"),
        ],
        namespace,
    )
    wait_available(kind_cluster, namespace, "client")
    cluster_ip = kind_cluster.get("service", "echo", "-n", namespace)["spec"]["clusterIP"]
    dns = kind_cluster.get("pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]
    metrics_url = f"http://{dns[0]['status']['podIP']}:9153/metrics"
    code = (
        "import json, socket, urllib.request\n"
        "out = {}\n"
        f"out['short'] = socket.gethostbyname('echo')\n"
        f"out['fqdn'] = socket.gethostbyname('echo.{namespace}.svc.cluster.local')\n"
        "out['api'] = socket.gethostbyname('kubernetes.default')\n"
        "try:\n"
        "    socket.gethostbyname('checkout-platform-dns-probe.invalid')\n"
        "    out['outside'] = 'resolved'\n"
        "except socket.gaierror as error:\n"
        "    out['outside'] = 'refused'\n"
        f"out['metrics'] = urllib.request.urlopen('{metrics_url}', timeout=5).read().decode()\n"
        "print(json.dumps(out))"
    )
    out = json.loads(python_in_pod(kind_cluster, namespace, "deployment/client", code))
    assert out["short"] == cluster_ip
    assert out["fqdn"] == cluster_ip
    assert (
        out["api"]
        == kind_cluster.get("service", "kubernetes", "-n", "default")["spec"]["clusterIP"]
    )
    assert out["outside"] == "refused"
    # CoreDNS answered the outside name itself: its forward plugin never sent a query.
    assert "coredns_dns_requests_total" in out["metrics"]
    assert "coredns_forward_requests_total" not in out["metrics"]


def test_deleting_an_owner_garbage_collects_what_it_owns(
    kind_cluster: KindCluster, namespace: str
) -> None:
    kind_cluster.apply([echo_deployment(kind_cluster, "echo", replicas=2)], namespace)
    wait_available(kind_cluster, namespace, "echo")
    (replica_set,) = kind_cluster.get("replicasets", "-n", namespace)["items"]
    assert replica_set["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    owner = kind_cluster.get("deployment", "echo", "-n", namespace)
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "owned",
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "echo",
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
        "data": {"a": "b"},
    }
    kind_cluster.apply([child], namespace)
    # Background propagation: the API server deletes the Deployment at once, the garbage
    # collector then removes its ReplicaSet, its Pods and the ConfigMap that names it as owner.
    kind_cluster.kubectl("-n", namespace, "delete", "deployment", "echo", "--cascade=background")

    def gone() -> bool:
        left = kind_cluster.get("replicasets,pods,configmaps", "-n", namespace)["items"]
        return not [i for i in left if i["metadata"]["name"] != "kube-root-ca.crt"]

    kind_cluster.wait_for(gone, timeout=120, what="ReplicaSet, Pods and ConfigMap collected")
