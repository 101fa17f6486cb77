"""Sync helpers of the operator tests over the admin client: Checkouts, children, statuses that
no controller writes here, the CRD, and polling with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.infra.kubeapi import KubeAPIServer

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = (
    REPO_ROOT / "charts" / "checkout-operator" / "crds" / "checkouts.checkout.platform.io.yaml"
)
SAMPLE_FILE = REPO_ROOT / "k8s" / "checkout-sample.yaml"
SERVICES = ("auth", "product", "cart", "order")
WORKLOADS = (*SERVICES, "storefront")
OWNER_LABEL = "checkout.platform.io/owner"
TEST_MANAGER = "checkout-tests"
MERGE = {"Content-Type": "application/merge-patch+json"}
APPLY = {"Content-Type": "application/apply-patch+yaml"}
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}

PATHS = {
    "Checkout": "/apis/checkout.platform.io/v1alpha1/namespaces/{ns}/checkouts",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "Service": "/api/v1/namespaces/{ns}/services",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
    "HorizontalPodAutoscaler": "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
    "Ingress": "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
    "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "Event": "/api/v1/namespaces/{ns}/events",
}


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll until ``predicate`` returns something truthy; return it, or fail after ``timeout``.

    The timeout bounds a wait for something that must happen, not how fast it happens (a
    passing wait returns at once): 60 s, since a CI run whose first phase also drives Chromium
    took over 20 s for one scheduled rotation (render five charts, patch, probe the pods)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"not within {timeout}s: {what or predicate}; last: {last!r}")


def load_crds() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(CRD_FILE.read_text()) if doc]


def install_crds(client: httpx.Client) -> None:
    """Apply the Checkout CRD and wait until the API serves it."""
    for crd in load_crds():
        name = crd["metadata"]["name"]
        response = client.patch(
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
            params={"fieldManager": TEST_MANAGER, "force": "true"},
            content=yaml.safe_dump(crd),
            headers=APPLY,
        )
        assert response.status_code in (200, 201), response.text
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]

        def served(group: str = group, plural: str = plural) -> bool:
            found = client.get(f"/apis/{group}/v1alpha1")
            return found.status_code == 200 and any(
                r["name"] == plural for r in found.json()["resources"]
            )

        wait_until(served, timeout=30, what=f"{plural}.{group} served")


def sample_checkout(name: str = "shop", **spec_overrides: Any) -> dict[str, Any]:
    """k8s/checkout-sample.yaml with another name and some spec keys replaced."""
    document: dict[str, Any] = yaml.safe_load(SAMPLE_FILE.read_text())
    document["metadata"] = {"name": name}
    document["spec"].update(spec_overrides)
    return document


class Cluster:
    """The admin's view of the test cluster."""

    def __init__(self, client: httpx.Client, server: KubeAPIServer) -> None:
        self.client = client
        self.server = server

    def path(self, kind: str, namespace: str, name: str | None = None) -> str:
        base = PATHS[kind].format(ns=namespace)
        return f"{base}/{name}" if name else base

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        response = self.client.get(self.path(kind, namespace, name))
        if response.status_code == 404:
            return None
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def list(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": selector} if selector else {}
        response = self.client.get(self.path(kind, namespace), params=params)
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def names(self, kind: str, namespace: str, selector: str | None = None) -> set[str]:
        return {item["metadata"]["name"] for item in self.list(kind, namespace, selector)}

    def create(self, kind: str, namespace: str, obj: dict[str, Any]) -> httpx.Response:
        return self.client.post(self.path(kind, namespace), json=obj)

    def create_checkout(self, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        response = self.create("Checkout", namespace, obj)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def merge(
        self, kind: str, namespace: str, name: str, patch: dict[str, Any], sub: str = ""
    ) -> dict[str, Any]:
        path = self.path(kind, namespace, name) + (f"/{sub}" if sub else "")
        response = self.client.patch(
            path, json=patch, headers=MERGE, params={"fieldManager": TEST_MANAGER}
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def delete(self, kind: str, namespace: str, name: str) -> None:
        response = self.client.delete(self.path(kind, namespace, name))
        assert response.status_code in (200, 202), response.text

    def checkout(self, namespace: str, name: str = "shop") -> dict[str, Any]:
        found = self.get("Checkout", namespace, name)
        assert found is not None, f"Checkout {namespace}/{name} is gone"
        return found

    def condition(self, namespace: str, type_: str, name: str = "shop") -> dict[str, Any] | None:
        conditions = (self.checkout(namespace, name).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), None)

    def children(self, namespace: str, owner: str = "shop") -> set[tuple[str, str]]:
        selector = f"{OWNER_LABEL}={owner}"
        return {
            (kind, item["metadata"]["name"])
            for kind in (
                "ServiceAccount",
                "Secret",
                "ConfigMap",
                "Service",
                "StatefulSet",
                "Deployment",
                "PodDisruptionBudget",
                "HorizontalPodAutoscaler",
                "Ingress",
                "NetworkPolicy",
            )
            for item in self.list(kind, namespace, selector)
        }

    def make_available(self, namespace: str, owner: str = "shop") -> None:
        """Write the status a Deployment/StatefulSet controller and kubelets would write."""
        for deployment in self.list("Deployment", namespace, f"{OWNER_LABEL}={owner}"):
            replicas = deployment["spec"].get("replicas", 1)
            self.merge(
                "Deployment",
                namespace,
                deployment["metadata"]["name"],
                {
                    "status": {
                        "observedGeneration": deployment["metadata"]["generation"],
                        "replicas": replicas,
                        "updatedReplicas": replicas,
                        "readyReplicas": replicas,
                        "availableReplicas": replicas,
                        "conditions": [
                            {
                                "type": "Available",
                                "status": "True",
                                "reason": "MinimumReplicasAvailable",
                                "message": "Deployment has minimum availability.",
                            }
                        ],
                    }
                },
                sub="status",
            )
        for statefulset in self.list("StatefulSet", namespace, f"{OWNER_LABEL}={owner}"):
            replicas = statefulset["spec"].get("replicas", 1)
            self.merge(
                "StatefulSet",
                namespace,
                statefulset["metadata"]["name"],
                {
                    "status": {
                        "observedGeneration": statefulset["metadata"]["generation"],
                        "replicas": replicas,
                        "readyReplicas": replicas,
                        "availableReplicas": replicas,
                        "currentReplicas": replicas,
                        "updatedReplicas": replicas,
                    }
                },
                sub="status",
            )

    def make_unavailable(self, namespace: str, deployment: str) -> None:
        self.merge(
            "Deployment",
            namespace,
            deployment,
            {
                "status": {
                    "availableReplicas": 0,
                    "readyReplicas": 0,
                    "conditions": [
                        {
                            "type": "Available",
                            "status": "False",
                            "reason": "MinimumReplicasUnavailable",
                            "message": "Deployment does not have minimum availability.",
                        }
                    ],
                }
            },
            sub="status",
        )

    def writes_since(self, offset: int, namespace: str) -> list[dict[str, Any]]:
        """Requests that changed something in ``namespace`` since audit-log ``offset``.

        Dry runs change nothing and are left out; everything else counts, whoever sent it.
        """
        events, _ = self.server.audit_events(offset)
        return [
            event
            for event in events
            if event.get("verb") in WRITE_VERBS
            and (event.get("objectRef") or {}).get("namespace") == namespace
            and "dryRun=" not in event.get("requestURI", "")
        ]

    def audit_offset(self) -> int:
        return self.server.audit_offset()
