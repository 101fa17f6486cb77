"""The node and its control plane: Ready, and running exactly the versions pinned in this repo."""

from __future__ import annotations

import re

import pytest

from tests.infra.kind import KindCluster
from tests.infra.kubeapi import pinned_kubernetes_version

pytestmark = pytest.mark.cluster


def _node(cluster: KindCluster) -> dict:
    (node,) = cluster.get("nodes")["items"]
    return node


def test_the_node_is_ready(kind_cluster: KindCluster) -> None:
    node = _node(kind_cluster)
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True", node["status"]["conditions"]
    assert node["metadata"]["labels"]["ingress-ready"] == "true"


def test_kubelet_and_api_server_run_the_pinned_kubernetes(kind_cluster: KindCluster) -> None:
    pinned = "v" + pinned_kubernetes_version()
    info = _node(kind_cluster)["status"]["nodeInfo"]
    assert info["kubeletVersion"] == pinned
    server = kind_cluster.kubectl("version", "-o", "json").stdout
    assert f'"gitVersion": "{pinned}"' in server


def _static_pod(cluster: KindCluster, component: str) -> dict:
    pods = cluster.get("pods", "-n", "kube-system", "-l", f"component={component}")["items"]
    assert pods, f"no {component} pod"
    return pods[0]


def _exec_version(cluster: KindCluster, pod: str, *command: str) -> str:
    result = cluster.kubectl("-n", "kube-system", "exec", pod, "--", *command)
    return result.stdout + result.stderr


@pytest.mark.parametrize(
    "component", ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]
)
def test_control_plane_images_hold_the_version_their_tag_names(
    kind_cluster: KindCluster, component: str
) -> None:
    pod = _static_pod(kind_cluster, component)
    image = pod["spec"]["containers"][0]["image"]
    tag = image.rsplit(":", 1)[1]
    assert tag == "v" + pinned_kubernetes_version()
    reported = _exec_version(kind_cluster, pod["metadata"]["name"], component, "--version")
    assert f"Kubernetes {tag}" in reported


def test_etcd_is_the_version_its_tag_names(kind_cluster: KindCluster) -> None:
    pod = _static_pod(kind_cluster, "etcd")
    tag = pod["spec"]["containers"][0]["image"].rsplit(":", 1)[1]
    reported = _exec_version(kind_cluster, pod["metadata"]["name"], "etcd", "--version")
    found = re.search(r"etcd Version: (\S+)", reported)
    assert found, reported
    assert tag == f"{found.group(1)}-0"
    if kind_cluster.images == "offline":
        assert found.group(1) == kind_cluster.names["ETCD_VERSION"]


def test_coredns_and_kube_proxy_run_the_pinned_versions(kind_cluster: KindCluster) -> None:
    dns = kind_cluster.get("pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]
    assert dns and all(p["status"]["phase"] == "Running" for p in dns)
    dns_tag = dns[0]["spec"]["containers"][0]["image"].rsplit(":", 1)[1]
    if kind_cluster.images == "offline":
        assert dns_tag == kind_cluster.names["COREDNS_VERSION"]
        reported = _exec_version(kind_cluster, dns[0]["metadata"]["name"], "/coredns", "-version")
        assert f"CoreDNS-{dns_tag.removeprefix('v')}" in reported
    (proxy,) = kind_cluster.get("pods", "-n", "kube-system", "-l", "k8s-app=kube-proxy")["items"]
    assert proxy["status"]["phase"] == "Running"
    assert proxy["spec"]["containers"][0]["image"].endswith(":v" + pinned_kubernetes_version())
