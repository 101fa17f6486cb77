"""The envtest control plane itself: a real kube-apiserver on a real etcd answers as a cluster
would for the calls the operator makes (server-side apply, status subresources, CRDs)."""

from __future__ import annotations

import os
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.infra.kubeapi import KubeAPIServer, pinned_kubernetes_version

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKOUT_CRDS_DIR = REPO_ROOT / "charts" / "checkout-operator" / "crds"
FIELD_MANAGER = "checkout-tests"
APPLY = {"Content-Type": "application/apply-patch+yaml"}

TEST_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.checkout.platform.io"},
    "spec": {
        "group": "test.checkout.platform.io",
        "scope": "Namespaced",
        "names": {
            "plural": "widgets",
            "singular": "widget",
            "kind": "Widget",
            "listKind": "WidgetList",
        },
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                    "colour": {"type": "string", "enum": ["red", "green"]},
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {"phase": {"type": "string"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}


def apply(client: httpx.Client, path: str, obj: dict[str, Any], manager: str) -> dict[str, Any]:
    """Server-side apply of ``obj`` at ``path``, creating it if absent."""
    response = client.patch(
        path,
        params={"fieldManager": manager, "force": "true"},
        content=yaml.safe_dump(obj),
        headers=APPLY,
    )
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def crd_path(name: str) -> str:
    return f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"


def wait_established(client: httpx.Client, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    conditions: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        response = client.get(crd_path(name))
        response.raise_for_status()
        # A fresh CRD has "conditions": null until the controller reports.
        conditions = response.json().get("status", {}).get("conditions") or []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return
        time.sleep(0.1)
    pytest.fail(f"CRD {name} not Established within {timeout}s: {conditions}")


def wait_served(client: httpx.Client, group: str, version: str, plural: str) -> None:
    # Established is set before discovery and the REST handler catch up; poll briefly.
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        response = client.get(f"/apis/{group}/{version}")
        if response.status_code == 200 and any(
            r["name"] == plural for r in response.json()["resources"]
        ):
            return
        time.sleep(0.1)
    pytest.fail(f"{plural}.{group}/{version} never appeared in discovery")


def deployment_intent(namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]},
            },
        },
    }


def test_version_is_pinned(kube: httpx.Client) -> None:
    response = kube.get("/version")
    response.raise_for_status()
    info = response.json()
    if os.environ.get("KUBEBUILDER_ASSETS"):
        pytest.skip("binaries come from KUBEBUILDER_ASSETS, not from the pinned envtest build")
    pinned = pinned_kubernetes_version()
    major, minor, _ = pinned.split(".")
    assert info["gitVersion"] == f"v{pinned}"
    assert (info["major"], info["minor"]) == (major, minor)


def test_admin_is_authenticated_as_system_masters(kube: httpx.Client) -> None:
    review = kube.post(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert review.status_code == 201, review.text
    assert "system:masters" in review.json()["status"]["userInfo"]["groups"]


def test_unauthenticated_requests_are_refused(kube_api: KubeAPIServer) -> None:
    context = ssl.create_default_context(cafile=str(kube_api.ca_cert_path))
    with httpx.Client(base_url=kube_api.url, verify=context, timeout=10) as anonymous:
        assert anonymous.get("/api/v1/namespaces").status_code in (401, 403)


def test_kubeconfig_points_at_the_server(kube_api: KubeAPIServer) -> None:
    config = yaml.safe_load(kube_api.kubeconfig_path.read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    assert cluster["server"] == kube_api.url
    assert Path(cluster["certificate-authority"]) == kube_api.ca_cert_path
    assert Path(user["client-certificate"]) == kube_api.client_cert_path
    assert Path(user["client-key"]) == kube_api.client_key_path


def test_namespace_is_created(kube: httpx.Client, namespace: str) -> None:
    response = kube.get(f"/api/v1/namespaces/{namespace}")
    assert response.status_code == 200, response.text
    assert response.json()["status"]["phase"] == "Active"


def test_deployment_server_side_apply_and_status_patch(kube: httpx.Client, namespace: str) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    labels = {"app.kubernetes.io/name": "web"}
    deployment = apply(kube, path, deployment_intent(namespace, labels), FIELD_MANAGER)
    assert deployment["metadata"]["generation"] == 1
    # No Deployment controller runs here: the status stays empty until a test writes it.
    assert not deployment.get("status", {}).get("availableReplicas")
    managers = {entry["manager"] for entry in deployment["metadata"]["managedFields"]}
    assert FIELD_MANAGER in managers

    # Re-applying the same intent changes nothing (no new generation).
    again = apply(kube, path, deployment_intent(namespace, labels), FIELD_MANAGER)
    assert again["metadata"]["generation"] == 1

    status = apply(
        kube,
        f"{path}/status",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "status": {
                "observedGeneration": 1,
                "replicas": 2,
                "updatedReplicas": 2,
                "readyReplicas": 2,
                "availableReplicas": 2,
                "conditions": [
                    {
                        "type": "Available",
                        "status": "True",
                        "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability.",
                    }
                ],
            },
        },
        f"{FIELD_MANAGER}-status",
    )
    assert status["status"]["availableReplicas"] == 2

    current = kube.get(path).json()
    assert current["metadata"]["generation"] == 1  # a status write is not a spec change
    assert current["spec"]["replicas"] == 2
    assert current["status"]["observedGeneration"] == current["metadata"]["generation"]
    conditions = {c["type"]: c["status"] for c in current["status"]["conditions"]}
    assert conditions["Available"] == "True"


def test_custom_resource_definition_and_object(kube: httpx.Client, namespace: str) -> None:
    name = TEST_CRD["metadata"]["name"]
    apply(kube, crd_path(name), TEST_CRD, FIELD_MANAGER)
    try:
        wait_established(kube, name)
        wait_served(kube, "test.checkout.platform.io", "v1alpha1", "widgets")
        base = f"/apis/test.checkout.platform.io/v1alpha1/namespaces/{namespace}/widgets"

        created = kube.post(
            base,
            json={
                "apiVersion": "test.checkout.platform.io/v1alpha1",
                "kind": "Widget",
                "metadata": {"name": "w1"},
                "spec": {"size": 3, "colour": "red"},
            },
        )
        assert created.status_code == 201, created.text

        invalid = kube.post(
            base,
            json={
                "apiVersion": "test.checkout.platform.io/v1alpha1",
                "kind": "Widget",
                "metadata": {"name": "w2"},
                "spec": {"size": 0, "colour": "blue"},
            },
        )
        assert invalid.status_code == 422, invalid.text

        status = kube.patch(
            f"{base}/w1/status",
            json={"status": {"phase": "Ready"}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert status.status_code == 200, status.text

        # With the status subresource on, status written through the main resource is ignored.
        ignored = kube.patch(
            f"{base}/w1",
            json={"status": {"phase": "Broken"}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert ignored.status_code == 200, ignored.text

        listed = kube.get(base).json()
        assert [(i["metadata"]["name"], i["status"]["phase"]) for i in listed["items"]] == [
            ("w1", "Ready")
        ]
    finally:
        kube.delete(crd_path(name))


def test_checkout_crds_install(kube: httpx.Client) -> None:
    crd_files = sorted(CHECKOUT_CRDS_DIR.glob("*.yaml")) if CHECKOUT_CRDS_DIR.is_dir() else []
    if not crd_files:
        pytest.skip(f"no Checkout CRD yet: {CHECKOUT_CRDS_DIR.relative_to(REPO_ROOT)}/*.yaml")
    crds = [
        doc
        for path in crd_files
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition"
    ]
    assert crds, f"{CHECKOUT_CRDS_DIR} holds no CustomResourceDefinition"
    # Left installed: operator tests apply the same CRDs, and applying again is a no-op.
    for crd in crds:
        name = crd["metadata"]["name"]
        apply(kube, crd_path(name), crd, FIELD_MANAGER)
        wait_established(kube, name)
        for version in crd["spec"]["versions"]:
            if version.get("served", True):
                wait_served(
                    kube, crd["spec"]["group"], version["name"], crd["spec"]["names"]["plural"]
                )


def test_audit_log_records_each_write(
    kube_api: KubeAPIServer, kube: httpx.Client, namespace: str
) -> None:
    offset = kube_api.audit_offset()
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "audited"}}
    assert kube.post(path, json=body, params={"dryRun": "All"}).status_code == 201
    assert kube.post(path, json=body).status_code == 201
    assert kube.get(f"{path}/audited").status_code == 200
    events, _ = kube_api.audit_events(offset)
    mine = [e for e in events if (e.get("objectRef") or {}).get("namespace") == namespace]
    assert [(e["verb"], "dryRun=All" in e["requestURI"]) for e in mine] == [
        ("create", True),
        ("create", False),
        ("get", False),
    ]
    assert all(e["stage"] == "ResponseComplete" for e in mine)


def test_cached_start_up_is_quick(kube_api: KubeAPIServer) -> None:
    # Measured on a shared 2-core machine: about 4 s. A build (first run) happens before this.
    assert kube_api.startup_seconds is not None
    assert kube_api.startup_seconds < 30
