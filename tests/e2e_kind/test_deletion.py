"""Deleting a Checkout removes what it made, through the operator's finalizer and the garbage
collector, and keeps or removes the database volumes as its spec says."""

from __future__ import annotations

import pytest

from tests.e2e_kind.conftest import Platform, apply_and_wait_ready, small_checkout
from tests.infra.kind import KindCluster

pytestmark = pytest.mark.e2e


def _left(cluster: KindCluster, namespace: str, name: str) -> dict[str, list[str]]:
    selector = f"app.kubernetes.io/instance={name}"
    found: dict[str, list[str]] = {}
    for kind in ("deployments", "statefulsets", "services", "configmaps", "pods", "pvc", "secrets"):
        items = cluster.get(kind, "-n", namespace, "-l", selector)["items"]
        if items:
            found[kind] = sorted(i["metadata"]["name"] for i in items)
    return found


def test_deleting_a_checkout_removes_its_children_and_keeps_data_as_asked(
    platform: Platform, namespace: str
) -> None:
    cluster = platform.cluster
    # One after the other: the node has two CPUs.
    before: dict[str, dict[str, list[str]]] = {}
    volumes: dict[str, str] = {}
    for name, keep in (("dropped", False), ("kept", True)):
        apply_and_wait_ready(cluster, small_checkout(name, namespace, keep))
        before[name] = made = _left(cluster, namespace, name)
        # The four services and the storefront; a database for each service.
        assert len(made["deployments"]) == 5 and len(made["statefulsets"]) == 4
        assert len(made["pvc"]) == 4
        if not keep:
            volumes = {
                claim: cluster.get("pvc", claim, "-n", namespace)["spec"]["volumeName"]
                for claim in made["pvc"]
            }
        cluster.kubectl("-n", namespace, "delete", "checkout", name, "--wait=true", timeout=300)

        def children_gone(name: str = name, keep: bool = keep) -> bool:
            left = _left(cluster, namespace, name)
            if not keep:
                return not left
            return set(left) <= {"pvc", "secrets"} and "pvc" in left

        cluster.wait_for(children_gone, timeout=240, what=f"the children of {name} gone")

    kept = _left(cluster, namespace, "kept")
    assert kept["pvc"] == before["kept"]["pvc"]
    # The kept volumes' credentials stay with them, so the data can be opened again.
    assert kept.get("secrets") and all("mongodb" in s for s in kept["secrets"])
    # The dropped Checkout's volumes are gone from the node too (reclaim policy Delete).
    cluster.wait_for(
        lambda: (
            not [
                pv
                for pv in cluster.get("pv")["items"]
                if pv["metadata"]["name"] in volumes.values()
            ]
        ),
        timeout=120,
        what="the dropped volumes released",
    )
