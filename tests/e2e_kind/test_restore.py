"""The backup round trip on kind, as the issue asks: shoppers place orders on a Checkout, a
`CheckoutBackup` backs it up, the Checkout is deleted with its database volumes, and a new
Checkout with ``spec.restore.from.backup`` comes up with the same data: every collection's
document count and content hash equal (as the restore read them back, against the first archive's
manifest, read by a pod of ours that mounts the claim), and the shopper signs in on the new
Checkout with the old password and sees the same orders.

Prints ``cluster backup: N documents, restore equal in S s`` (S: from `kubectl apply` of the new
Checkout to Ready, the restore included).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e_kind.conftest import (
    SAMPLE,
    Platform,
    apply_and_wait_ready,
    provision,
    read_claim,
    small_checkout,
)
from tests.e2e_kind.journeys import PASSWORD
from tests.infra.kind import KindCluster, record_figure

pytestmark = pytest.mark.e2e

OLD, NEW = "moving", "moved"
CLAIM = f"{OLD}-backups"


def _manifest(name: str, namespace: str) -> dict[str, Any]:
    manifest = small_checkout(name, namespace, keep_data=False)
    sample = yaml.safe_load(SAMPLE.read_text())
    manifest["spec"]["ingress"] = {**sample["spec"]["ingress"], "host": f"{name}.localhost"}
    manifest["spec"]["storefront"]["enabled"] = False
    # Backups to the old Checkout's claim, kept when it goes; never on a schedule here.
    manifest["spec"]["backup"] = {
        "schedule": "@yearly",
        "suspend": True,
        "target": {"volumeClaim": {"name": CLAIM, "size": "256Mi"}},
    }
    return manifest


def _client(cluster: KindCluster, name: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{cluster.http_port}",
        headers={"Host": f"{name}.localhost"},
        timeout=30.0,
    )


def _back_up(cluster: KindCluster, namespace: str, request: str, checkout: str) -> dict[str, Any]:
    cluster.apply(
        json.dumps(
            {
                "apiVersion": "checkout.platform.io/v1alpha1",
                "kind": "CheckoutBackup",
                "metadata": {"name": request, "namespace": namespace},
                "spec": {"checkout": checkout},
            }
        )
    )
    status: dict[str, Any] = cluster.wait_for(
        lambda: (
            (s := cluster.get("checkoutbackup", request, "-n", namespace).get("status") or {})
            .get("phase") in ("Succeeded", "Failed") and s
        ),
        timeout=300,
        what=f"CheckoutBackup {request} finished",
    )  # fmt: skip
    assert status["phase"] == "Succeeded", status
    return status


def _manifests(cluster: KindCluster, namespace: str, archives: list[str]) -> dict[str, Any]:
    """Each archive's manifest.json, as a pod of ours that mounts the claim reads it."""
    script = (
        "import json, sys, tarfile\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    with tarfile.open('/backups/' + name) as tar:\n"
        "        out[name] = json.load(tar.extractfile('manifest.json'))\n"
        "print(json.dumps(out))\n"
    )
    found: dict[str, Any] = read_claim(cluster, namespace, CLAIM, NEW, script, *archives)
    return found


def _collections(manifest: dict[str, Any]) -> dict[str, Any]:
    """database/collection -> (documents, hash), whatever else the manifest says."""
    found: dict[str, Any] = {}
    for database, collections in manifest["databases"].items():
        for collection, summary in collections.items():
            found[f"{database}/{collection}"] = summary
    return found


def test_a_backup_restores_into_a_new_checkout_with_every_collection_equal(
    platform: Platform, namespace: str
) -> None:
    cluster = platform.cluster
    old, _ = provision(cluster, _manifest(OLD, namespace))
    email = f"mover-{uuid.uuid4().hex[:8]}@example.com"
    with old.client() as http:
        assert http.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        ).status_code == 201  # fmt: skip
        token = http.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
        auth = {"Authorization": f"Bearer {token.json()['accessToken']}"}
        products = http.get("/api/v1/products", params={"pageSize": 50}).json()["items"]
        placed = []
        for product in [p for p in products if p["stock"] >= 1][:3]:
            added = http.post(
                "/api/v1/cart/items", headers=auth, json={"productId": product["id"], "quantity": 1}
            )
            assert added.status_code == 200, added.text
            order = http.post(
                "/api/v1/orders", headers={**auth, "Idempotency-Key": str(uuid.uuid4())}
            )
            assert order.status_code == 201, order.text
            placed.append(order.json()["id"])
        orders_before = http.get("/api/v1/orders", headers=auth).json()["items"]
    assert sorted(o["id"] for o in orders_before) == sorted(placed) and len(placed) == 3

    before = _back_up(cluster, namespace, "before-move", OLD)
    cluster.kubectl("-n", namespace, "delete", "checkout", OLD, "--wait=true", timeout=300)
    cluster.wait_for(
        lambda: not cluster.get(
            "pvc", "-n", namespace, "-l", f"app.kubernetes.io/instance={OLD},"
            "app.kubernetes.io/component=database",
        )["items"],
        timeout=240,
        what="the old Checkout's database volumes deleted",
    )  # fmt: skip
    assert cluster.get("pvc", CLAIM, "-n", namespace)  # the archives' claim stays

    manifest = _manifest(NEW, namespace)
    manifest["spec"]["restore"] = {"from": {"backup": "before-move"}}
    seconds = apply_and_wait_ready(cluster, manifest)
    restored = cluster.get("checkout", NEW, "-n", namespace)["status"]["restore"]
    assert restored["phase"] == "Succeeded", restored
    assert restored["archive"] == before["archive"]
    assert restored["documents"] == before["documents"] > 0
    gone = cluster.kubectl("-n", namespace, "get", "job", f"{NEW}-restore", check=False)
    assert gone.returncode != 0, "the restore Job is deleted once it succeeded"

    # Every collection equal: the restore read each one back after loading; the digest of those
    # counts and hashes (status.restore.verifiedSha256) is computed here from the first archive's
    # own manifest. The services' workers may settle in-flight orders once they start, so a later
    # backup of the new Checkout is compared by counts only.
    after = _back_up(cluster, namespace, "after-move", NEW)
    manifests = _manifests(cluster, namespace, [before["archive"], after["archive"]])
    databases = manifests[before["archive"]]["databases"]
    compact = json.dumps(databases, sort_keys=True, separators=(",", ":"))
    assert restored["verifiedSha256"] == hashlib.sha256(compact.encode()).hexdigest()
    first, second = (_collections(manifests[a]) for a in (before["archive"], after["archive"]))
    assert {k: v["documents"] for k, v in first.items()} == {
        k: v["documents"] for k, v in second.items()
    }
    documents = before["documents"]

    # The shopper's password and orders came along.
    with _client(cluster, NEW) as http:
        token = http.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
        assert token.status_code == 200, token.text
        auth = {"Authorization": f"Bearer {token.json()['accessToken']}"}
        orders_after = http.get("/api/v1/orders", headers=auth).json()["items"]

    def shown(orders: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(o["id"], o["lines"], o["totalCents"]) for o in orders]

    assert shown(orders_after) == shown(orders_before)
    record_figure(f"cluster backup: {documents} documents, restore equal in {seconds:.1f} s")
