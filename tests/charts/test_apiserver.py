"""The charts against a real kube-apiserver of the pinned Kubernetes (etcd and kube-apiserver
only, as envtest runs them; no nodes are needed):

- every chart, with every value set, installs: the API server itself accepts every object
  (defaulting, validation and admission, beyond what the JSON schemas check);
- generated Secrets are made once on install, kept byte for byte by every upgrade (even after
  someone rotated them), left behind by uninstall, and reused by the next install: the `lookup`
  path that `helm template` cannot exercise offline."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.charts.conftest import CASE_IDS, CASES, VALUE_SETS
from tests.infra.helm import Helm
from tests.infra.kubeapi import KubeAPIServer, kube_client

SecretData = dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def apiserver() -> Iterator[KubeAPIServer]:
    with KubeAPIServer(audit=False) as server:
        yield server


@pytest.mark.parametrize(("chart", "value_set"), CASES, ids=CASE_IDS)
def test_every_chart_installs_on_a_real_api_server(
    helm: Helm, apiserver: KubeAPIServer, chart: str, value_set: str
) -> None:
    namespace = f"{chart}-{value_set}"[:63].strip("-")
    # Cluster-scoped objects (the operator's RBAC) are named after the release: one per case.
    release = f"shop-{value_set}" if chart == "checkout-operator" else "shop"
    values = VALUE_SETS[chart][value_set]
    expected = helm.template(chart, values, release=release, namespace=namespace)
    with kube_client(apiserver) as client:
        # The chart's namespace enforces the `restricted` Pod Security Standard.
        created = client.post("/api/v1/namespaces", json={"metadata": _restricted(namespace)})
        assert created.status_code == 201, created.text
        # Namespaces the chart puts objects into besides its own (the operator's watched ones).
        for other in {o["metadata"].get("namespace") for o in expected} - {None, namespace}:
            created = client.post("/api/v1/namespaces", json={"metadata": {"name": other}})
            assert created.status_code in (201, 409), created.text
        result = helm.run(
            "install",
            release,
            str(helm.chart(chart)),
            "--namespace",
            namespace,
            "--create-namespace",
            "--kubeconfig",
            str(apiserver.kubeconfig_path),
            *helm.values_args(values, chart),
        )
        assert "STATUS: deployed" in result.stdout, result.stdout + result.stderr
        for obj in expected:
            name = f"{obj['kind']}/{obj['metadata']['name']}"
            version = obj["apiVersion"]
            path = "/api/v1" if version == "v1" else f"/apis/{version}"
            if obj["kind"] not in {"ClusterRole", "ClusterRoleBinding"}:
                path += f"/namespaces/{obj['metadata'].get('namespace', namespace)}"
            response = client.get(f"{path}/{_PLURALS[obj['kind']]}/{obj['metadata']['name']}")
            assert response.status_code == 200, f"{name} was not stored: {response.text}"
        # There are no controllers to make the workloads' pods: each pod template is sent as a
        # Pod (a server-side dry run, through admission), which Pod Security admits or refuses.
        for obj in expected:
            if obj["kind"] in ("Deployment", "StatefulSet"):
                spec = dict(obj["spec"]["template"]["spec"])
                # As the StatefulSet controller does: a volume for each claim template.
                claims = obj["spec"].get("volumeClaimTemplates", [])
                spec["volumes"] = spec.get("volumes", []) + [
                    {
                        "name": claim["metadata"]["name"],
                        "persistentVolumeClaim": {
                            "claimName": f"{claim['metadata']['name']}-{obj['metadata']['name']}-0"
                        },
                    }
                    for claim in claims
                ]
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"{obj['metadata']['name']}-probe"},
                    "spec": spec,
                }
                answer = client.post(
                    f"/api/v1/namespaces/{namespace}/pods", params={"dryRun": "All"}, json=pod
                )
                assert answer.status_code == 201, f"{obj['metadata']['name']}: {answer.text}"


def _restricted(namespace: str) -> dict[str, Any]:
    return {
        "name": namespace,
        "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        },
    }


def test_pod_security_admission_refuses_what_restricted_forbids(apiserver: KubeAPIServer) -> None:
    """The control for the install test: this API server enforces the namespace label."""
    with kube_client(apiserver) as client:
        created = client.post("/api/v1/namespaces", json={"metadata": _restricted("psa-control")})
        assert created.status_code == 201, created.text
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "root"},
            "spec": {"containers": [{"name": "c", "image": "checkout/auth:1"}]},
        }
        answer = client.post(
            "/api/v1/namespaces/psa-control/pods", params={"dryRun": "All"}, json=pod
        )
        assert answer.status_code == 403, answer.text
        assert "violates PodSecurity" in answer.json()["message"]


_PLURALS = {
    "ConfigMap": "configmaps",
    "Deployment": "deployments",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "Ingress": "ingresses",
    "NetworkPolicy": "networkpolicies",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Secret": "secrets",
    "Service": "services",
    "ServiceAccount": "serviceaccounts",
    "StatefulSet": "statefulsets",
}


def _secrets(client: httpx.Client, namespace: str) -> SecretData:
    response = client.get(f"/api/v1/namespaces/{namespace}/secrets")
    response.raise_for_status()
    return {
        item["metadata"]["name"]: item["data"]
        for item in response.json()["items"]
        # Helm's own release records change on every revision by design.
        if item.get("type") != "helm.sh/release.v1"
    }


def _rotate(client: httpx.Client, namespace: str, name: str) -> dict[str, str]:
    """Replace a keyring the way the operator's rotation does: a new active key, old one kept."""
    current = client.get(f"/api/v1/namespaces/{namespace}/secrets/{name}").json()
    ring: dict[str, Any] = json.loads(base64.b64decode(current["data"]["keyring.json"]))
    secret = base64.urlsafe_b64encode(b"k" * 32).decode()
    ring["keys"].append({"kid": "rotated-key", "secret": secret})
    ring["active"] = "rotated-key"
    data = {"keyring.json": base64.b64encode(json.dumps(ring).encode()).decode()}
    response = client.patch(
        f"/api/v1/namespaces/{namespace}/secrets/{name}",
        json={"data": data},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    response.raise_for_status()
    return data


def test_generated_secrets_survive_upgrade_rotation_uninstall_and_reinstall(
    helm: Helm, apiserver: KubeAPIServer
) -> None:
    kubeconfig = ["--kubeconfig", str(apiserver.kubeconfig_path)]
    chart = str(helm.chart("checkout"))
    namespace = ["--namespace", "shop"]

    def run(*args: str) -> None:
        helm.run(*args, *namespace, *kubeconfig)

    with kube_client(apiserver) as client:
        run("install", "shop", chart, "--create-namespace")
        installed = _secrets(client, "shop")
        assert sorted(installed) == [
            "shop-auth-mongodb",
            "shop-cart-mongodb",
            "shop-internal-keyring",
            "shop-jwt-keyring",
            "shop-order-mongodb",
            "shop-product-mongodb",
            "shop-storefront-csrf",
        ]

        run("upgrade", "shop", chart, "--set", "auth.replicaCount=2", "--set", "ingress.host=a.b")
        assert _secrets(client, "shop") == installed
        # The storefront left out and put back: its CSRF secret stays the same throughout.
        run("upgrade", "shop", chart, "--set", "storefront.enabled=false")
        assert _secrets(client, "shop") == installed
        run("upgrade", "shop", chart, "--set", "storefront.replicaCount=2")
        assert _secrets(client, "shop") == installed

        rotated = _rotate(client, "shop", "shop-jwt-keyring")
        run("upgrade", "shop", chart, "--set", "product.replicaCount=3")
        after_rotation = _secrets(client, "shop")
        assert after_rotation["shop-jwt-keyring"] == rotated, "an upgrade undid a rotation"
        assert after_rotation == {**installed, "shop-jwt-keyring": rotated}

        run("uninstall", "shop")
        assert _secrets(client, "shop") == after_rotation, "uninstall deleted a kept Secret"

        run("install", "shop", chart)
        assert _secrets(client, "shop") == after_rotation, "a reinstall made new credentials"


@pytest.mark.parametrize(
    ("chart", "generated"), [("cart", "shop-cart-mongodb"), ("storefront", "shop-storefront-csrf")]
)
def test_a_chart_on_its_own_keeps_its_generated_secret(
    helm: Helm, apiserver: KubeAPIServer, chart: str, generated: str
) -> None:
    """A service's database credentials; the storefront's CSRF secret."""
    namespace = f"solo-{chart}"
    kubeconfig = ["--kubeconfig", str(apiserver.kubeconfig_path), "--namespace", namespace]
    path = str(helm.chart(chart))
    with kube_client(apiserver) as client:
        helm.run("install", "shop", path, "--create-namespace", *kubeconfig)
        installed = _secrets(client, namespace)
        assert list(installed) == [generated]
        helm.run("upgrade", "shop", path, "--set", "replicaCount=2", *kubeconfig)
        assert _secrets(client, namespace) == installed
