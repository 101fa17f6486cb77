"""Generated Secrets across a release's life, against a real kube-apiserver (no nodes needed):
made once on install, kept byte for byte by every upgrade (even after someone rotated them), left
behind by uninstall, and reused by the next install. This is the `lookup` path that `helm
template` cannot exercise offline."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.infra.helm import Helm
from tests.infra.kubeapi import KubeAPIServer, kube_client

SecretData = dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def apiserver() -> Iterator[KubeAPIServer]:
    with KubeAPIServer(audit=False) as server:
        yield server


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
        ]

        run("upgrade", "shop", chart, "--set", "auth.replicaCount=2", "--set", "ingress.host=a.b")
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


def test_a_service_chart_keeps_its_database_credentials(
    helm: Helm, apiserver: KubeAPIServer
) -> None:
    kubeconfig = ["--kubeconfig", str(apiserver.kubeconfig_path), "--namespace", "solo"]
    chart = str(helm.chart("cart"))
    with kube_client(apiserver) as client:
        helm.run("install", "shop", chart, "--create-namespace", *kubeconfig)
        installed = _secrets(client, "solo")
        assert list(installed) == ["shop-cart-mongodb"]
        helm.run("upgrade", "shop", chart, "--set", "replicaCount=2", *kubeconfig)
        assert _secrets(client, "solo") == installed
