"""Day 2 switches on a Checkout (operator/checkout_operator/control.py), on the real API server:
a paused Checkout's drift and spec are left alone, and put right once unpaused; a hibernating
one has every workload at zero replicas and no autoscaler, with its Secrets kept, and wakes as
it was; a bad value is refused, naming the annotation. And the CRD's v1beta1, served beside
v1alpha1 from the same stored objects."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.operator.cluster import OWNER_LABEL, SERVICES, Cluster, sample_checkout, wait_until
from tests.operator.conftest import RunningOperator
from tests.operator.test_lifecycle import REPAIR_BOUND, condition_is, ready

PAUSED = "checkout.platform.io/paused"
HIBERNATE = "checkout.platform.io/hibernate"


def annotate(cluster: Cluster, namespace: str, annotation: str, value: str | None) -> None:
    patch = {"metadata": {"annotations": {annotation: value}}}
    cluster.merge("Checkout", namespace, "shop", patch)


def phase(cluster: Cluster, namespace: str) -> str:
    return str((cluster.checkout(namespace).get("status") or {}).get("phase"))


def replicas(cluster: Cluster, namespace: str) -> dict[str, int | None]:
    """spec.replicas of every Deployment and StatefulSet of the Checkout, by kind/name."""
    found: dict[str, int | None] = {}
    for kind in ("Deployment", "StatefulSet"):
        for item in cluster.list(kind, namespace, f"{OWNER_LABEL}=shop"):
            found[f"{kind}/{item['metadata']['name']}"] = item["spec"].get("replicas")
    return found


def secret_uids(cluster: Cluster, namespace: str) -> dict[str, str]:
    return {s["metadata"]["name"]: s["metadata"]["uid"] for s in cluster.list("Secret", namespace)}


def test_a_paused_checkout_is_left_alone_until_unpaused(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    cluster.create_checkout(namespace, sample_checkout())
    ready(cluster, namespace)
    annotate(cluster, namespace, PAUSED, "true")
    paused = wait_until(
        lambda: condition_is(cluster, namespace, "Paused", "True"), what="Paused True"
    )
    assert "paused" in paused["message"] and phase(cluster, namespace) == "Paused"

    cluster.delete("Service", namespace, "shop-product")
    cluster.delete("Deployment", namespace, "shop-order")
    cluster.merge("Checkout", namespace, "shop", {"spec": {"services": {"cart": {"replicas": 2}}}})
    # Drift sweeps every 0.5 s here and the watch on Deployments acts at once: many chances.
    reconciles = operator.runtime.reconciles
    time.sleep(3 * REPAIR_BOUND / 5)
    assert cluster.get("Service", namespace, "shop-product") is None
    assert cluster.get("Deployment", namespace, "shop-order") is None
    cart = cluster.get("Deployment", namespace, "shop-cart")
    assert cart is not None and cart["spec"]["replicas"] == 1
    assert phase(cluster, namespace) == "Paused"
    assert operator.runtime.reconciles - reconciles <= 2  # looked, applied nothing

    annotate(cluster, namespace, PAUSED, None)
    wait_until(
        lambda: (
            cluster.get("Service", namespace, "shop-product")
            and cluster.get("Deployment", namespace, "shop-order")
            and (c := cluster.get("Deployment", namespace, "shop-cart"))
            and c["spec"]["replicas"] == 2
        ),
        timeout=REPAIR_BOUND,
        what="the drift put back and the new spec applied once unpaused",
    )
    checkout = ready(cluster, namespace)
    types = {c["type"] for c in checkout["status"]["conditions"]}
    assert "Paused" not in types, checkout["status"]
    assert checkout["status"]["observedGeneration"] == checkout["metadata"]["generation"]


def test_hibernate_scales_everything_to_zero_and_waking_brings_it_back(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    autoscaled = {"services": {"product": {"autoscaling": {"enabled": True}}}}
    cluster.create_checkout(namespace, sample_checkout())
    cluster.merge("Checkout", namespace, "shop", {"spec": autoscaled})
    ready(cluster, namespace)
    awake = replicas(cluster, namespace)
    assert cluster.get("HorizontalPodAutoscaler", namespace, "shop-product") is not None
    secrets = secret_uids(cluster, namespace)
    assert {f"shop-{s}-mongodb" for s in SERVICES} <= secrets.keys()

    annotate(cluster, namespace, HIBERNATE, "true")
    wait_until(
        lambda: set(replicas(cluster, namespace).values()) == {0},
        timeout=REPAIR_BOUND,
        what="every Deployment and StatefulSet at 0 replicas",
    )
    assert replicas(cluster, namespace).keys() == awake.keys()
    assert cluster.get("HorizontalPodAutoscaler", namespace, "shop-product") is None
    # Until the controllers report the pods gone, it is hibernating; then hibernated.
    wait_until(lambda: phase(cluster, namespace) == "Hibernating", what="phase Hibernating")
    cluster.make_available(namespace)
    hibernated = wait_until(
        lambda: condition_is(cluster, namespace, "Hibernated", "True"), what="Hibernated True"
    )
    assert "scaled to zero" in hibernated["message"]
    assert phase(cluster, namespace) == "Hibernated"
    assert condition_is(cluster, namespace, "Ready", "False")["reason"] == "Hibernated"
    kept = secret_uids(cluster, namespace)
    assert kept == secrets  # the same Secrets, never made again

    annotate(cluster, namespace, HIBERNATE, "false")
    wait_until(
        lambda: replicas(cluster, namespace) == awake,
        timeout=REPAIR_BOUND,
        what="the replicas as before",
    )
    assert cluster.get("HorizontalPodAutoscaler", namespace, "shop-product") is not None
    checkout = ready(cluster, namespace)
    types = {c["type"] for c in checkout["status"]["conditions"]}
    assert "Hibernated" not in types, checkout["status"]
    kept = secret_uids(cluster, namespace)
    assert kept == secrets


def test_a_bad_switch_is_refused_naming_the_annotation(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    cluster.create_checkout(namespace, sample_checkout())
    ready(cluster, namespace)
    before = replicas(cluster, namespace)
    annotate(cluster, namespace, HIBERNATE, "yes please")
    refused: dict[str, Any] = wait_until(
        lambda: (c := cluster.checkout(namespace))["status"]["phase"] == "Failed" and c,
        what="phase Failed",
    )
    message = refused["status"]["message"]
    assert HIBERNATE in message and "yes please" in message, message
    assert replicas(cluster, namespace) == before  # nothing scaled on a bad word
    annotate(cluster, namespace, HIBERNATE, None)
    ready(cluster, namespace)


def test_a_checkout_written_as_v1beta1_is_reconciled_and_reads_the_same_as_v1alpha1(
    cluster: Cluster, namespace: str, operator: RunningOperator, kube: httpx.Client
) -> None:
    """Both versions are served from one stored schema: an object made through v1beta1 is the
    operator's (which watches v1alpha1) like any other, and its status names the operator's
    version."""
    document = sample_checkout()
    document["apiVersion"] = "checkout.platform.io/v1beta1"
    beta = f"/apis/checkout.platform.io/v1beta1/namespaces/{namespace}/checkouts"
    made = kube.post(beta, json=document, params={"fieldValidation": "Strict"})
    assert made.status_code == 201, made.text
    checkout = ready(cluster, namespace)
    assert checkout["apiVersion"] == "checkout.platform.io/v1alpha1"
    assert checkout["status"]["operatorVersion"] == operator.runtime.config.version
    assert operator.runtime.config.version not in ("", "unknown")
    as_beta = kube.get(f"{beta}/shop").json()
    assert as_beta["apiVersion"] == "checkout.platform.io/v1beta1"
    assert as_beta["spec"] == checkout["spec"] and as_beta["status"] == checkout["status"]
    bad = kube.post(
        beta,
        json={
            **document,
            "metadata": {"name": "bad"},
            "spec": {"services": {"auth": {"replicas": 0}}},
        },
    )
    assert bad.status_code == 422 and "spec.services.auth.replicas" in bad.text, bad.text
