"""The operator's RBAC is what it uses, no more: the operator runs against the real API server
as the ServiceAccount its chart makes, bound to the chart's ClusterRole and nothing else (a token
from the TokenRequest API, as in a pod), through a Checkout's whole life - create, Ready, a child
deleted and put back, a rotation of both rings, delete with its volumes. The API server's audit
log then lists every request it made: none was refused, and every verb on every resource the
ClusterRole grants was used."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from checkout_operator.config import OperatorConfig

from tests.infra.helm import Helm
from tests.operator.cluster import (
    OWNER_LABEL,
    Cluster,
    Refused,
    decoded,
    sample_checkout,
    wait_until,
)
from tests.operator.conftest import run_operator
from tests.operator.test_lifecycle import ready

OPERATOR_NAMESPACE = "checkout-system"
RELEASE = "checkout-operator"
ROTATE_ANNOTATION = "checkout.platform.io/rotate"


# Grants that no request of the operator shows, each with its reason.
NOT_REQUESTS = {
    # Setting blockOwnerDeletion on a child's owner reference: the OwnerReferencesPermission-
    # Enforcement admission plugin checks it where it runs (not on this API server).
    ("update", "checkout.platform.io", "checkouts/finalizers"): "owner references",
}


def _rendered_rbac(charts: Helm) -> list[dict[str, Any]]:
    objects = charts.template("checkout-operator", release=RELEASE, namespace=OPERATOR_NAMESPACE)
    return [
        o for o in objects if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
    ]


def _granted(rbac: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(verb, API group, resource[/subresource]) for every rule of the ClusterRoles."""
    return {
        (verb, group, resource)
        for role in rbac
        if role["kind"] == "ClusterRole"
        for rule in role["rules"]
        for verb in rule["verbs"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


@pytest.fixture
def service_account_kubeconfig(
    cluster: Cluster, charts: Helm, tmp_path: Path
) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """The chart's ServiceAccount, ClusterRole and binding on the API server, and a kubeconfig
    holding a token of that ServiceAccount."""

    def made_or_there(kind: str, namespace: str | None, obj: dict[str, Any]) -> None:
        answer = cluster.try_create(kind, namespace, obj)
        assert not isinstance(answer, Refused) or answer.status == 409, answer

    made_or_there("Namespace", None, {"metadata": {"name": OPERATOR_NAMESPACE}})
    rbac = _rendered_rbac(charts)
    namespaces = {"ServiceAccount": OPERATOR_NAMESPACE, "ClusterRole": None}
    for obj in rbac:
        made_or_there(obj["kind"], namespaces.get(obj["kind"]), obj)
    (account,) = [o["metadata"]["name"] for o in rbac if o["kind"] == "ServiceAccount"]
    token = cluster.resource("ServiceAccount").subresources["token"]
    issued = token.create(
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
              "spec": {"expirationSeconds": 3600}},
        name=account,
        namespace=OPERATOR_NAMESPACE,
        serialize=False,
    )  # fmt: skip
    admin = yaml.safe_load(cluster.server.kubeconfig_path.read_text())
    admin["users"][0]["user"] = {"token": decoded(issued)["status"]["token"]}
    path = tmp_path / "operator.kubeconfig"
    path.write_text(yaml.safe_dump(admin))
    yield path, rbac
    for obj in rbac:
        if obj["kind"] != "ServiceAccount":
            cluster.api.delete(cluster.resource(obj["kind"]), name=obj["metadata"]["name"])


def _requests_by(cluster: Cluster, offset: int, user: str) -> list[dict[str, Any]]:
    events, _ = cluster.server.audit_events(offset)
    return [
        e for e in events if e.get("stage") == "ResponseComplete" and e["user"]["username"] == user
    ]


def test_the_operator_uses_exactly_what_its_cluster_role_grants(
    cluster: Cluster,
    namespace: str,
    operator_config: OperatorConfig,
    service_account_kubeconfig: tuple[Path, list[dict[str, Any]]],
) -> None:
    kubeconfig, rbac = service_account_kubeconfig
    (account,) = [o["metadata"]["name"] for o in rbac if o["kind"] == "ServiceAccount"]
    user = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{account}"
    config = dataclasses.replace(
        operator_config,
        kubeconfig=kubeconfig,
        namespace=OPERATOR_NAMESPACE,
        rotation_check_interval=0.2,
        rotation_poll_interval=0.2,
        rotation_margin=0.0,
    )
    offset = cluster.server.audit_offset()
    spec = sample_checkout(mongodb={"keepDataOnDelete": False})
    spec["spec"]["secretRotation"] = {"tokenLifetimeSeconds": 60, "propagationDelaySeconds": 1}
    spec["spec"]["backup"] = {"schedule": "0 3 * * *", "retention": 2}
    with run_operator(config, (namespace,)):
        cluster.create_checkout(namespace, spec)
        ready(cluster, namespace)
        # Backups on: the archives' claim made, the CronJob applied; then off (pruned).
        assert cluster.get("PersistentVolumeClaim", namespace, "shop-backups")
        wait_until(lambda: cluster.get("CronJob", namespace, "shop-backup"), what="the CronJob")
        # A CheckoutBackup: its Job made from the CronJob, its status written.
        cluster.create(
            "CheckoutBackup", namespace, {"metadata": {"name": "now"}, "spec": {"checkout": "shop"}}
        )
        wait_until(
            lambda: ((cluster.get("CheckoutBackup", namespace, "now") or {}).get("status") or {})
            .get("phase") == "Running",
            what="the CheckoutBackup running",
        )  # fmt: skip
        job = cluster.get("Job", namespace, "now-backup")
        assert job is not None
        report = {"ok": True, "archive": "shop-20261207T030000.000Z.tar.gz", "bytes": 1, "kept": 1}
        cluster.finish_job(namespace, job, report=report, exit_code=0)
        wait_until(
            lambda: ((cluster.get("CheckoutBackup", namespace, "now") or {}).get("status") or {})
            .get("phase") == "Succeeded",
            what="the CheckoutBackup done",
        )  # fmt: skip
        cluster.merge("Checkout", namespace, "shop", {"spec": {"backup": None}})
        wait_until(
            lambda: cluster.get("CronJob", namespace, "shop-backup") is None,
            what="the CronJob pruned",
        )
        # Drift: a deleted Deployment is put back.
        cluster.delete("Deployment", namespace, "shop-order")
        wait_until(lambda: cluster.get("Deployment", namespace, "shop-order"), what="put back")
        # Autoscaling on (an HPA made), changed (patched), off again (pruned).
        for autoscaling in (
            {"enabled": True},
            {"enabled": True, "maxReplicas": 7},
            {"enabled": False},
        ):
            cluster.merge(
                "Checkout", namespace, "shop",
                {"spec": {"services": {"cart": {"autoscaling": autoscaling}}}},
            )  # fmt: skip
            wanted = [autoscaling.get("maxReplicas", 5)] if autoscaling["enabled"] else []
            wait_until(
                lambda wanted=wanted: (
                    [
                        h["spec"]["maxReplicas"]
                        for h in cluster.list(
                            "HorizontalPodAutoscaler", namespace, f"{OWNER_LABEL}=shop"
                        )
                    ]
                    == wanted
                ),
                what=f"autoscaling {autoscaling}",
            )
        # A rotation of the internal ring (no service pods here: nothing to wait for).
        cluster.merge(
            "Checkout",
            namespace,
            "shop",
            {"metadata": {"annotations": {ROTATE_ANNOTATION: "internal"}}},
        )
        wait_until(
            lambda: (
                cluster.checkout(namespace, "shop")
                .get("status", {})
                .get("secretRotation", {})
                .get("internal", {})
                .get("rotations", 0)
                >= 1
            ),
            timeout=60,
            what="the internal ring rotated",
        )
        # A restore (from the CheckoutBackup's archive): its Job made, deleted once it succeeded.
        cluster.create_checkout(
            namespace, sample_checkout("restored", restore={"from": {"backup": "now"}})
        )
        restore_job = wait_until(
            lambda: cluster.get("Job", namespace, "restored-restore"), what="the restore Job"
        )
        cluster.finish_job(
            namespace, restore_job, report={"ok": True, "action": "restore"}, exit_code=0
        )
        wait_until(
            lambda: cluster.get("Job", namespace, "restored-restore") is None,
            what="the restore Job deleted",
        )
        # Delete, volumes included: the claims of the StatefulSets' template are made by hand
        # here (no StatefulSet controller runs), as the controller would name them.
        for service in ("auth", "cart"):
            claim = {
                "metadata": {
                    "name": f"data-shop-{service}-mongodb-0",
                    "labels": {
                        "app.kubernetes.io/name": service,
                        "app.kubernetes.io/instance": "shop",
                        "app.kubernetes.io/component": "database",
                    },
                },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
            cluster.create("PersistentVolumeClaim", namespace, claim)
        cluster.delete("Checkout", namespace, "shop")
        wait_until(lambda: cluster.get("Checkout", namespace, "shop") is None, what="deleted")
        wait_until(
            lambda: not cluster.list("Deployment", namespace, f"{OWNER_LABEL}=shop"),
            what="children gone",
        )
        time.sleep(1.0)

    requests = _requests_by(cluster, offset, user)
    assert requests, f"no request by {user} in the audit log"
    refused = [
        (e["verb"], e["objectRef"].get("resource"), e["responseStatus"].get("code"))
        for e in requests
        if e["responseStatus"].get("code") == 403
    ]
    assert not refused, f"refused by RBAC: {refused}"
    used = set()
    for event in requests:
        ref = event.get("objectRef") or {}
        if not ref.get("resource"):
            continue  # discovery (/api, /apis): open to every authenticated user
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        used.add((event["verb"], ref.get("apiGroup", ""), resource))
        if event["verb"] == "patch" and event["responseStatus"].get("code") == 201:
            # A server-side apply that made the object: authorized as create as well.
            used.add(("create", ref.get("apiGroup", ""), resource))
    granted = _granted(rbac)
    assert used <= granted, sorted(used - granted)
    unused = granted - used - set(NOT_REQUESTS)
    assert not unused, f"granted but never used by the operator: {sorted(unused)}"
    # And each grant explained away is really granted (the list is not stale).
    assert set(NOT_REQUESTS) <= granted - used
