"""Sync helpers of the operator tests over the admin client: Checkouts, children, statuses that
no controller writes here, the CRD, and polling with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import yaml
from kubernetes.client import ApiClient, Configuration
from kubernetes.config import load_kube_config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError
from kubernetes.dynamic.resource import Resource
from prometheus_client.parser import text_string_to_metric_families

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
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}

# The kinds the tests name, by their apiVersion (a kind name alone is ambiguous for some, e.g.
# Event in v1 and events.k8s.io/v1).
API_VERSIONS = {
    "Checkout": "checkout.platform.io/v1alpha1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "CronJob": "batch/v1",
    "Job": "batch/v1",
    "CheckoutBackup": "checkout.platform.io/v1alpha1",
    "Service": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "ServiceAccount": "v1",
    "Pod": "v1",
    "Namespace": "v1",
    "PodDisruptionBudget": "policy/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "Ingress": "networking.k8s.io/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "PersistentVolumeClaim": "v1",
    "Event": "v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1",
    "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "CustomResourceDefinition": "apiextensions.k8s.io/v1",
}
CHILD_KINDS = (
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "Service",
    "StatefulSet",
    "Deployment",
    "CronJob",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "Ingress",
    "NetworkPolicy",
)


def admin_api(server: KubeAPIServer, *, user_agent: str = "checkout-tests") -> DynamicClient:
    """The official client's dynamic client, as the cluster admin of ``server``; what it
    discovers is cached in the server's directory."""
    configuration = Configuration()
    load_kube_config(config_file=str(server.kubeconfig_path), client_configuration=configuration)
    api = ApiClient(configuration)
    api.user_agent = user_agent
    return DynamicClient(api, cache_file=str(server.dir / "discovery.json"))


def decoded(response: Any) -> dict[str, Any]:
    """The body of a raw (``serialize=False``) response."""
    result: dict[str, Any] = msgspec.json.decode(response.data)
    return result


class Refused(msgspec.Struct):
    """What the API server said when it refused a request: its status code and Status body."""

    status: int
    body: dict[str, Any]


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


class Scrape:
    """One scrape of the operator's ``/metrics``, parsed: each sample's value by its name and
    labels."""

    def __init__(self, text: str) -> None:
        self.samples = [
            (sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    @classmethod
    def of(cls, url: str) -> Scrape:
        response = httpx.get(url, timeout=5)
        response.raise_for_status()
        return cls(response.text)

    def value(self, name: str, **labels: str) -> float | None:
        """The sample of ``name`` with exactly these labels; None when there is none."""
        found = [v for n, got, v in self.samples if n == name and got == labels]
        return found[0] if found else None

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` that have these labels (and maybe others)."""
        return sum(
            v
            for n, got, v in self.samples
            if n == name and all(got.get(k) == want for k, want in labels.items())
        )

    def labelled(self, **labels: str) -> list[str]:
        """The names of the samples that carry these labels."""
        return [n for n, got, _ in self.samples if all(got.get(k) == v for k, v in labels.items())]


def load_crds() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(CRD_FILE.read_text()) if doc]


def install_crds(api: DynamicClient) -> None:
    """Apply the Checkout CRD and wait until the API serves it."""
    crds = api.resources.get(
        api_version=API_VERSIONS["CustomResourceDefinition"], kind="CustomResourceDefinition"
    )
    for crd in load_crds():
        api.server_side_apply(
            crds, body=crd, field_manager=TEST_MANAGER, force_conflicts=True, serialize=False
        )
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]

        def served(group: str = group, plural: str = plural) -> bool:
            try:
                found = decoded(api.request("get", f"/apis/{group}/v1alpha1", serialize=False))
            except NotFoundError:
                return False
            return any(r["name"] == plural for r in found["resources"])

        wait_until(served, timeout=30, what=f"{plural}.{group} served")


def sample_checkout(name: str = "shop", **spec_overrides: Any) -> dict[str, Any]:
    """k8s/checkout-sample.yaml with another name and some spec keys replaced."""
    document: dict[str, Any] = yaml.safe_load(SAMPLE_FILE.read_text())
    document["metadata"] = {"name": name}
    document["spec"].update(spec_overrides)
    return document


class Cluster:
    """The admin's view of the test cluster, through the official client's dynamic client."""

    def __init__(self, api: DynamicClient, server: KubeAPIServer) -> None:
        self.api = api
        self.server = server

    def resource(self, kind: str) -> Resource:
        return self.api.resources.get(api_version=API_VERSIONS[kind], kind=kind)

    def path(self, kind: str, namespace: str, name: str | None = None) -> str:
        """The URL path of ``kind`` in ``namespace`` (of one object, given ``name``), for the
        tests that send a raw request."""
        path: str = self.resource(kind).path(name=name, namespace=namespace)
        return path

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return decoded(
                self.api.get(self.resource(kind), name=name, namespace=namespace, serialize=False)
            )
        except NotFoundError:
            return None

    def list(
        self, kind: str, namespace: str | None, selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Objects of ``kind`` in ``namespace``, or (None) in every namespace."""
        listed = self.api.get(
            self.resource(kind), namespace=namespace, label_selector=selector, serialize=False
        )
        items: list[dict[str, Any]] = decoded(listed)["items"]
        return items

    def names(self, kind: str, namespace: str, selector: str | None = None) -> set[str]:
        return {item["metadata"]["name"] for item in self.list(kind, namespace, selector)}

    def create(self, kind: str, namespace: str | None, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj`` (``namespace`` None: a cluster-wide kind); fails the test if refused."""
        made = self.try_create(kind, namespace, obj)
        assert not isinstance(made, Refused), f"{kind} refused: {made}"
        return made

    def try_create(
        self, kind: str, namespace: str | None, obj: dict[str, Any]
    ) -> dict[str, Any] | Refused:
        """The object made, or what the API server refused it with."""
        obj = {"apiVersion": API_VERSIONS[kind], "kind": kind, **obj}
        try:
            return decoded(
                self.api.create(self.resource(kind), body=obj, namespace=namespace, serialize=False)
            )
        except DynamicApiError as exc:
            return Refused(int(exc.status), msgspec.json.decode(exc.body))

    def create_checkout(self, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        return self.create("Checkout", namespace, obj)

    def merge(
        self, kind: str, namespace: str, name: str, patch: dict[str, Any], sub: str = ""
    ) -> dict[str, Any]:
        resource = self.resource(kind)
        return decoded(
            self.api.patch(
                resource.subresources[sub] if sub else resource,
                body=patch,
                name=name,
                namespace=namespace,
                content_type=MERGE["Content-Type"],
                field_manager=TEST_MANAGER,
                serialize=False,
            )
        )

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self.api.delete(self.resource(kind), name=name, namespace=namespace, serialize=False)

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
            for kind in CHILD_KINDS
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

    def finish_job(
        self, namespace: str, job: dict[str, Any], *, report: dict[str, Any], exit_code: int
    ) -> None:
        """Write what the Job controller and a kubelet would for a Job whose one pod ended with
        ``report`` as its termination message and ``exit_code``: the pod (with the Job's pod
        labels) and its ended container, then the Job's Complete or Failed condition."""
        name = job["metadata"]["name"]
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        template = job["spec"]["template"]
        pod = self.create(
            "Pod",
            namespace,
            {
                "metadata": {
                    "name": f"{name}-pod",
                    "labels": {
                        **(template["metadata"].get("labels") or {}),
                        "batch.kubernetes.io/job-name": name,
                    },
                },
                "spec": template["spec"],
            },
        )
        container = pod["spec"]["containers"][0]["name"]
        terminated = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "message": msgspec.json.encode(report).decode(),
            "startedAt": when,
            "finishedAt": when,
        }
        self.merge(
            "Pod",
            namespace,
            pod["metadata"]["name"],
            {
                "status": {
                    "phase": "Succeeded" if exit_code == 0 else "Failed",
                    "containerStatuses": [
                        {
                            "name": container,
                            "image": pod["spec"]["containers"][0]["image"],
                            "imageID": "",
                            "ready": False,
                            "restartCount": 0,
                            "state": {"terminated": terminated},
                        }
                    ],
                }
            },
            sub="status",
        )
        ok = exit_code == 0
        final = "Complete" if ok else "Failed"
        interim = "SuccessCriteriaMet" if ok else "FailureTarget"
        reason = "CompletionsReached" if ok else "BackoffLimitExceeded"
        message = "" if ok else "Job has reached the specified backoff limit"
        conditions = [
            {"type": t, "status": "True", "reason": reason, "message": message,
             "lastProbeTime": when, "lastTransitionTime": when}
            for t in (interim, final)
        ]  # fmt: skip
        status: dict[str, Any] = {
            "startTime": when,
            "conditions": conditions,
            "succeeded" if ok else "failed": 1,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
        }
        if ok:
            status["completionTime"] = when
        self.merge("Job", namespace, name, {"status": status}, sub="status")

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
