"""The operator keeping a Checkout's children as the spec says, against the real API server:
status from the children, no writes when nothing changed, drift put back, pruning (the storefront
switched off and on among it), deletion (with volumes kept or removed), several Checkouts in
several namespaces."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from checkout_operator.config import OperatorConfig

from tests.operator.cluster import (
    OWNER_LABEL,
    SERVICES,
    WORKLOADS,
    Cluster,
    sample_checkout,
    wait_until,
)
from tests.operator.conftest import RunningOperator, run_operator

# The drift interval is 0.5 s in these tests; a repair must land well within this.
REPAIR_BOUND = 5.0


def ready(cluster: Cluster, namespace: str, name: str = "shop") -> dict[str, Any]:
    """Wait for the children, make them available as controllers would, wait for Ready."""
    workloads = len(WORKLOADS) if _storefront_on(cluster, namespace, name) else len(SERVICES)
    wait_until(
        lambda: (
            len(cluster.list("StatefulSet", namespace, f"{OWNER_LABEL}={name}")) == len(SERVICES)
            and len(cluster.list("Deployment", namespace, f"{OWNER_LABEL}={name}")) == workloads
        ),
        what=f"{workloads} Deployments and {len(SERVICES)} StatefulSets",
    )
    cluster.make_available(namespace, name)
    checkout: dict[str, Any] = wait_until(
        lambda: (
            (c := cluster.checkout(namespace, name)).get("status", {}).get("phase") == "Ready" and c
        ),
        what="phase Ready",
    )
    return checkout


def _storefront_on(cluster: Cluster, namespace: str, name: str) -> bool:
    spec = cluster.checkout(namespace, name)["spec"]
    return bool(spec.get("storefront", {}).get("enabled", True))


def condition_is(
    cluster: Cluster, namespace: str, type_: str, status: str
) -> dict[str, Any] | None:
    """The Checkout's condition of that type, if it has that status."""
    found = cluster.condition(namespace, type_)
    return found if found and found["status"] == status else None


def quiet(cluster: Cluster, namespace: str, *, calm: float = 2.0, timeout: float = 20.0) -> int:
    """Wait until nothing was written in ``namespace`` for ``calm`` seconds; the audit offset."""
    deadline = time.monotonic() + timeout
    offset = cluster.audit_offset()
    calm_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if cluster.writes_since(offset, namespace):
            offset = cluster.audit_offset()
            calm_since = time.monotonic()
        elif time.monotonic() - calm_since >= calm:
            return offset
    raise AssertionError(f"writes in {namespace} did not stop within {timeout}s")


def test_status_follows_the_deployments_and_statefulsets(
    cluster: Cluster, namespace: str, operator: RunningOperator, kube: httpx.Client
) -> None:
    cluster.create_checkout(namespace, sample_checkout())
    waiting = wait_until(lambda: cluster.condition(namespace, "Ready"), what="a Ready condition")
    assert waiting["status"] == "False"
    assert "waiting for auth" in waiting["message"]
    checkout = cluster.checkout(namespace)
    assert checkout["status"]["phase"] == "Progressing"
    # The rotation's SecretsRotated (tests/operator/test_rotation.py) may already be there too.
    assert {c["type"] for c in checkout["status"]["conditions"]} - {"SecretsRotated"} == {
        "Ready",
        "AuthAvailable",
        "ProductAvailable",
        "CartAvailable",
        "OrderAvailable",
        "StorefrontAvailable",
    }

    checkout = ready(cluster, namespace)
    status = checkout["status"]
    assert status["observedGeneration"] == checkout["metadata"]["generation"]
    assert status["url"] == "http://checkout.localhost"
    assert status["message"] == ""
    assert all(c["status"] == "True" for c in status["conditions"])

    table = kube.get(
        cluster.path("Checkout", namespace),
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    ).json()
    columns = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
    assert columns == ["Name", "Ready", "Phase", "Host", "Last Backup", "Age"]
    assert table["rows"][0]["cells"][:4] == ["shop", "True", "Ready", "checkout.localhost"]

    # A Deployment losing its pods shows at once, through the watch on Deployments.
    cluster.make_unavailable(namespace, "shop-cart")
    cart = wait_until(
        lambda: condition_is(cluster, namespace, "CartAvailable", "False"),
        timeout=REPAIR_BOUND,
        what="CartAvailable False",
    )
    assert "0/1" in cart["message"]
    assert cluster.condition(namespace, "Ready")["status"] == "False"  # type: ignore[index]
    assert cluster.condition(namespace, "AuthAvailable")["status"] == "True"  # type: ignore[index]

    # So does the storefront's: the shop down is the platform not Ready.
    cluster.make_available(namespace)
    wait_until(lambda: condition_is(cluster, namespace, "Ready", "True"), what="Ready again")
    cluster.make_unavailable(namespace, "shop-storefront")
    wait_until(
        lambda: condition_is(cluster, namespace, "StorefrontAvailable", "False"),
        timeout=REPAIR_BOUND,
        what="StorefrontAvailable False",
    )
    ready_condition = cluster.condition(namespace, "Ready")
    assert ready_condition is not None and ready_condition["status"] == "False"
    assert "storefront: its Deployment has 0/1 replicas available" in ready_condition["message"]

    reasons = {
        e["reason"]
        for e in cluster.list("Event", namespace)
        if e["involvedObject"].get("kind") == "Checkout"
    }
    assert {"Reconciled", "Ready"} <= reasons


def test_an_unchanged_spec_is_reconciled_without_a_single_write(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    cluster.create_checkout(namespace, sample_checkout())
    ready(cluster, namespace)
    offset = quiet(cluster, namespace)
    runtime = operator.runtime
    writes_before = sum(runtime.kube.writes.values())
    reconciles = runtime.reconciles

    wait_until(lambda: runtime.reconciles >= reconciles + 5, what="five more reconciles")

    writes = cluster.writes_since(offset, namespace)
    assert [
        (w["verb"], w["objectRef"].get("resource"), w["user"]["username"]) for w in writes
    ] == []
    assert sum(runtime.kube.writes.values()) == writes_before
    # Nothing was even compared field by field: every child was known in sync by version.
    assert runtime.children.in_sync


def test_children_deleted_or_edited_by_hand_are_put_back(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    cluster.create_checkout(namespace, sample_checkout())
    ready(cluster, namespace)
    original = cluster.get("Deployment", namespace, "shop-auth")
    assert original is not None

    started = time.monotonic()
    cluster.delete("ConfigMap", namespace, "shop-cart")
    cluster.delete("Service", namespace, "shop-product")
    cluster.merge(
        "Deployment",
        namespace,
        "shop-auth",
        {"spec": {"replicas": 7}, "metadata": {"labels": {"app.kubernetes.io/part-of": "hacked"}}},
    )
    wait_until(
        lambda: (
            cluster.get("ConfigMap", namespace, "shop-cart")
            and cluster.get("Service", namespace, "shop-product")
        ),
        timeout=REPAIR_BOUND,
        what="the deleted children back",
    )

    def reverted() -> bool:
        auth = cluster.get("Deployment", namespace, "shop-auth")
        return (
            auth is not None
            and auth["spec"]["replicas"] == 1
            and auth["metadata"]["labels"]["app.kubernetes.io/part-of"] == "checkout-platform"
        )

    wait_until(reverted, timeout=REPAIR_BOUND, what="the edited Deployment reverted")
    assert time.monotonic() - started < REPAIR_BOUND
    config = cluster.get("ConfigMap", namespace, "shop-cart")
    assert config is not None
    assert config["metadata"]["labels"][OWNER_LABEL] == "shop"

    # A field the operator does not set is someone else's business and stays.
    cluster.merge(
        "Deployment", namespace, "shop-order", {"metadata": {"annotations": {"team": "orders"}}}
    )
    runtime = operator.runtime
    reconciles = runtime.reconciles
    wait_until(lambda: runtime.reconciles >= reconciles + 3, what="three more reconciles")
    order = cluster.get("Deployment", namespace, "shop-order")
    assert order is not None
    assert order["metadata"]["annotations"]["team"] == "orders"


def test_what_the_spec_no_longer_asks_for_is_pruned(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    spec = sample_checkout(services={"cart": {"autoscaling": {"enabled": True, "maxReplicas": 4}}})
    cluster.create_checkout(namespace, spec)
    wait_until(
        lambda: cluster.names("Ingress", namespace) == {f"shop-{w}" for w in WORKLOADS},
        what="five Ingresses",
    )
    hpa = wait_until(
        lambda: cluster.get("HorizontalPodAutoscaler", namespace, "shop-cart"), what="the cart HPA"
    )
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)

    cluster.merge(
        "Checkout",
        namespace,
        "shop",
        {"spec": {"ingress": {"enabled": False}, "services": {"cart": {"autoscaling": None}}}},
    )
    wait_until(lambda: not cluster.names("Ingress", namespace), what="the Ingresses pruned")
    wait_until(
        lambda: not cluster.names("HorizontalPodAutoscaler", namespace), what="the HPA pruned"
    )
    # The rest stays, and the URL is gone with the Ingress.
    assert cluster.get("Deployment", namespace, "shop-cart") is not None
    wait_until(
        lambda: cluster.checkout(namespace)["status"].get("url") == "", what="the URL cleared"
    )


def test_the_storefront_switched_off_is_removed_and_back_on_is_made_again(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    cluster.create_checkout(namespace, sample_checkout())
    ready(cluster, namespace)
    storefront = {
        (kind, name) for kind, name in cluster.children(namespace) if "storefront" in name
    }
    assert storefront == {
        ("ServiceAccount", "shop-storefront"),
        ("ConfigMap", "shop-storefront"),
        ("Service", "shop-storefront"),
        ("Deployment", "shop-storefront"),
        ("PodDisruptionBudget", "shop-storefront"),
        ("Ingress", "shop-storefront"),
        ("NetworkPolicy", "shop-storefront"),
        ("Secret", "shop-storefront-csrf"),
    }
    first_secret = cluster.get("Secret", namespace, "shop-storefront-csrf")
    assert first_secret is not None
    others = cluster.children(namespace) - storefront

    cluster.merge("Checkout", namespace, "shop", {"spec": {"storefront": {"enabled": False}}})
    wait_until(
        lambda: cluster.children(namespace) == others, what="the storefront's children pruned"
    )
    # Its condition goes with it (not left True, nor False); the platform is Ready without it.
    wait_until(
        lambda: (
            cluster.condition(namespace, "StorefrontAvailable") is None
            and condition_is(cluster, namespace, "Ready", "True")
        ),
        what="StorefrontAvailable removed, Ready",
    )
    assert cluster.children(namespace) == others

    cluster.merge("Checkout", namespace, "shop", {"spec": {"storefront": {"enabled": True}}})
    wait_until(
        lambda: cluster.children(namespace) == others | storefront, what="the storefront back"
    )
    ready(cluster, namespace)
    assert condition_is(cluster, namespace, "StorefrontAvailable", "True")
    # A new CSRF secret: a disabled storefront's forms are gone with it.
    second_secret = cluster.get("Secret", namespace, "shop-storefront-csrf")
    assert second_secret is not None
    assert second_secret["metadata"]["uid"] != first_secret["metadata"]["uid"]


def pvc(name: str, service: str, release: str = "shop") -> dict[str, Any]:
    """A volume claim as the StatefulSet controller makes it from the chart's template."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": service,
                "app.kubernetes.io/instance": release,
                "app.kubernetes.io/component": "database",
            },
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def claims_left(cluster: Cluster, namespace: str) -> set[str]:
    """Claims not being deleted (the pvc-protection finalizer keeps deleted ones visible here,
    where no controller removes it)."""
    return {
        c["metadata"]["name"]
        for c in cluster.list("PersistentVolumeClaim", namespace)
        if not c["metadata"].get("deletionTimestamp")
    }


def test_delete_removes_children_and_volumes_when_told(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    cluster.create_checkout(namespace, sample_checkout())  # keepDataOnDelete: false
    wait_until(lambda: len(cluster.children(namespace)) > 20, what="the children")
    for service in SERVICES:
        claim = pvc(f"data-shop-{service}-mongodb-0", service)
        cluster.create("PersistentVolumeClaim", namespace, claim)
    finalizers = cluster.checkout(namespace)["metadata"]["finalizers"]
    assert finalizers == ["checkout.platform.io/finalizer"]

    cluster.delete("Checkout", namespace, "shop")
    wait_until(lambda: cluster.get("Checkout", namespace, "shop") is None, what="Checkout gone")
    assert cluster.children(namespace) == set()
    assert claims_left(cluster, namespace) == set()


def test_delete_keeps_volumes_and_their_credentials_when_told(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    spec = sample_checkout(mongodb={"keepDataOnDelete": True})
    cluster.create_checkout(namespace, spec)
    wait_until(lambda: len(cluster.children(namespace)) > 20, what="the children")
    claims = {f"data-shop-{service}-mongodb-0" for service in SERVICES}
    for service in SERVICES:
        claim = pvc(f"data-shop-{service}-mongodb-0", service)
        cluster.create("PersistentVolumeClaim", namespace, claim)
    credentials = {f"shop-{service}-mongodb" for service in SERVICES}
    wait_until(lambda: credentials <= cluster.names("Secret", namespace), what="credentials")
    password = cluster.get("Secret", namespace, "shop-auth-mongodb")["data"]  # type: ignore[index]

    cluster.delete("Checkout", namespace, "shop")
    wait_until(lambda: cluster.get("Checkout", namespace, "shop") is None, what="Checkout gone")
    assert cluster.children(namespace) == set()
    assert claims_left(cluster, namespace) == claims
    assert cluster.names("Secret", namespace) == credentials  # the keyrings went
    kept = cluster.get("Secret", namespace, "shop-auth-mongodb")
    assert kept is not None
    assert not kept["metadata"].get("ownerReferences")
    assert OWNER_LABEL not in kept["metadata"]["labels"]

    # A new Checkout of that name finds its data readable: same credentials, adopted again.
    uid = cluster.create_checkout(namespace, spec)["metadata"]["uid"]
    adopted = wait_until(
        lambda: (
            (s := cluster.get("Secret", namespace, "shop-auth-mongodb"))
            and s["metadata"].get("ownerReferences")
            and s
        ),
        what="the credential adopted",
    )
    assert adopted["data"] == password
    assert adopted["metadata"]["ownerReferences"][0]["uid"] == uid


def test_checkouts_in_two_namespaces_do_not_interfere(
    cluster: Cluster,
    namespace: str,
    other_namespace: str,
    start_operator: Any,
) -> None:
    start_operator(namespace, other_namespace)
    cluster.create_checkout(namespace, sample_checkout(services={"auth": {"replicas": 2}}))
    cluster.create_checkout(other_namespace, sample_checkout(services={"auth": {"replicas": 3}}))
    ready(cluster, namespace)
    ready(cluster, other_namespace)
    for ns, replicas in ((namespace, 2), (other_namespace, 3)):
        auth = cluster.get("Deployment", ns, "shop-auth")
        assert auth is not None
        assert auth["spec"]["replicas"] == replicas
        config = cluster.get("ConfigMap", ns, "shop-cart")
        assert config is not None
        assert config["data"]["AUTH_URL"] == f"http://shop-auth.{ns}.svc.cluster.local:80"

    keyrings = [
        cluster.get("Secret", ns, "shop-jwt-keyring")["data"]  # type: ignore[index]
        for ns in (namespace, other_namespace)
    ]
    assert keyrings[0] != keyrings[1]  # each installation has its own keys

    # The rotation daemon publishes its part of the status a moment after Ready: let it, so the
    # snapshot is of a settled status.
    wait_until(
        lambda: "secretRotation" in cluster.checkout(other_namespace).get("status", {}),
        what="the other Checkout's rotation status",
    )
    others = cluster.children(other_namespace)
    other_status = cluster.checkout(other_namespace)["status"]
    cluster.delete("Checkout", namespace, "shop")
    wait_until(lambda: cluster.get("Checkout", namespace, "shop") is None, what="first gone")
    assert cluster.children(namespace) == set()
    assert cluster.children(other_namespace) == others
    assert cluster.checkout(other_namespace)["status"] == other_status


def test_a_spec_the_charts_refuse_fails_permanently_and_says_why(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    # A valid Kubernetes quantity that the service charts' schema does not accept.
    spec = sample_checkout(services={"cart": {"resources": {"requests": {"cpu": "1e3"}}}})
    cluster.create_checkout(namespace, spec)
    status = wait_until(
        lambda: (
            (s := cluster.checkout(namespace).get("status") or {}).get("phase") == "Failed" and s
        ),
        what="phase Failed",
    )
    assert "helm template cart" in status["message"]
    assert "resources" in status["message"]
    assert status["conditions"][0]["reason"] == "InvalidSpec"
    assert not cluster.list("Deployment", namespace)
    warnings = wait_until(
        lambda: [
            e
            for e in cluster.list("Event", namespace)
            if e["reason"] == "ReconcileFailed" and e["type"] == "Warning"
        ],
        what="a ReconcileFailed warning",
    )
    assert "helm template cart" in warnings[0]["message"]
    assert len(warnings) == 1 and warnings[0].get("count", 1) == 1  # said once, not per retry

    cluster.merge(
        "Checkout",
        namespace,
        "shop",
        {"spec": {"services": {"cart": {"resources": {"requests": {"cpu": "100m"}}}}}},
    )
    ready(cluster, namespace)


def test_liveness_endpoint_answers(operator: RunningOperator) -> None:
    def answer() -> httpx.Response | None:
        # kopf opens the endpoint after its first login, which may follow the ready flag.
        try:
            response = httpx.get(operator.liveness_url, timeout=5)
        except httpx.ConnectError:
            return None
        return response if response.status_code == 200 else None

    response = wait_until(answer, what="liveness 200")
    assert "reconciles" in response.json()


def test_a_restarted_operator_resumes_without_rewriting_the_children(
    cluster: Cluster, namespace: str, operator_config: OperatorConfig
) -> None:
    with run_operator(operator_config, (namespace,)) as first:
        cluster.create_checkout(namespace, sample_checkout())
        ready(cluster, namespace)
        quiet(cluster, namespace)
        assert first.runtime.reconciles > 0

    offset = cluster.audit_offset()
    with run_operator(operator_config, (namespace,)) as second:
        wait_until(lambda: second.runtime.reconciles >= 3, what="the new operator's reconciles")
        assert second.runtime.kube.writes == {}
    writes = cluster.writes_since(offset, namespace)
    # Neither the operator nor kopf's bookkeeping on the Checkout wrote anything.
    assert [(w["verb"], w["objectRef"]["resource"], w["userAgent"]) for w in writes] == []


# kopf abandons its authenticator coroutine when start-up fails before it runs.
@pytest.mark.filterwarnings("ignore:coroutine 'authenticator' was never awaited:RuntimeWarning")
def test_bad_settings_stop_the_operator_with_their_name(
    namespace: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # No OperatorConfig handed in: the operator reads its environment, as in its image.
    monkeypatch.setenv("CHECKOUT_CHARTS_DIR", "/nonexistent/charts")
    with pytest.raises(Exception) as failure, run_operator(None, (namespace,)):
        pass
    assert type(failure.value).__name__ == "ActivityError"  # kopf's: a startup handler failed
    assert "CHECKOUT_CHARTS_DIR=/nonexistent/charts holds no chart" in caplog.text


def test_two_checkouts_in_one_namespace_keep_to_their_own_children(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    cluster.create_checkout(namespace, sample_checkout("blue"))
    cluster.create_checkout(namespace, sample_checkout("green"))
    # NetworkPolicies are the last kind the operator applies (two per service, one for the
    # storefront).
    for name in ("blue", "green"):
        wait_until(
            lambda name=name: (
                len(cluster.names("NetworkPolicy", namespace, f"{OWNER_LABEL}={name}")) == 9
            ),
            what=f"{name}'s NetworkPolicies",
        )
    green = cluster.children(namespace, "green")
    assert not green & cluster.children(namespace, "blue")

    # Pruning blue's Ingresses leaves green's, which match no spec of blue's.
    cluster.merge("Checkout", namespace, "blue", {"spec": {"ingress": {"enabled": False}}})
    wait_until(
        lambda: not cluster.names("Ingress", namespace, f"{OWNER_LABEL}=blue"),
        what="blue's Ingresses pruned",
    )
    cluster.delete("Checkout", namespace, "blue")
    wait_until(lambda: cluster.get("Checkout", namespace, "blue") is None, what="blue gone")
    assert cluster.children(namespace, "blue") == set()
    assert cluster.children(namespace, "green") == green


def test_a_deleted_deployment_is_put_back_without_waiting_for_the_drift_interval(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    operator = start_operator(namespace, drift_interval=300.0)
    cluster.create_checkout(namespace, sample_checkout())
    ready(cluster, namespace)
    reconciles = operator.runtime.reconciles
    cluster.delete("Deployment", namespace, "shop-order")
    cluster.delete("StatefulSet", namespace, "shop-cart-mongodb")
    wait_until(
        lambda: (
            cluster.get("Deployment", namespace, "shop-order")
            and cluster.get("StatefulSet", namespace, "shop-cart-mongodb")
        ),
        timeout=REPAIR_BOUND,
        what="the Deployment and StatefulSet back",
    )
    assert operator.runtime.reconciles > reconciles
    # Back without a status, so the conditions say so until a controller reports again.
    wait_until(
        lambda: (
            (c := condition_is(cluster, namespace, "OrderAvailable", "False"))
            and "not rolled out" in c["message"]
        ),
        timeout=REPAIR_BOUND,
        what="OrderAvailable False: not rolled out yet",
    )


def test_ready_stays_true_through_a_rollout_and_the_phase_waits_for_its_end(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    """Ready means serving: a spec change that rolls a Deployment keeps Ready True while its
    replicas stay available (maxUnavailable 0); the phase is Progressing, saying what rolls, and
    Ready again once every replica is updated."""
    cluster.create_checkout(namespace, sample_checkout())
    ready(cluster, namespace)
    before = cluster.get("Deployment", namespace, "shop-order")
    assert before is not None
    resources = {"requests": {"cpu": "20m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}}
    cluster.merge(
        "Checkout", namespace, "shop", {"spec": {"services": {"order": {"resources": resources}}}}
    )
    rolling = wait_until(
        lambda: (
            (s := cluster.checkout(namespace).get("status", {})).get("phase") == "Progressing" and s
        ),
        timeout=REPAIR_BOUND,
        what="phase Progressing",
    )
    assert rolling["message"] == (
        "serving; rolling out order: its Deployment's latest spec is not rolled out yet"
    )
    assert condition_is(cluster, namespace, "Ready", "True"), rolling
    assert condition_is(cluster, namespace, "OrderAvailable", "True"), rolling

    # Mid-rollout: a new pod surged, not yet every replica updated; still serving.
    order = cluster.get("Deployment", namespace, "shop-order")
    assert order is not None and order["metadata"]["generation"] > before["metadata"]["generation"]
    cluster.merge(
        "Deployment",
        namespace,
        "shop-order",
        {
            "status": {
                "observedGeneration": order["metadata"]["generation"],
                "replicas": 2,
                "updatedReplicas": 1,
                "availableReplicas": 1,
            }
        },
        sub="status",
    )
    wait_until(
        lambda: "1 old replicas left" in cluster.checkout(namespace)["status"]["message"],
        timeout=REPAIR_BOUND,
        what="the rollout's progress in the message",
    )
    assert condition_is(cluster, namespace, "Ready", "True")
    cluster.make_available(namespace)
    done = wait_until(
        lambda: (s := cluster.checkout(namespace)["status"]).get("phase") == "Ready" and s,
        timeout=REPAIR_BOUND,
        what="phase Ready",
    )
    assert done["message"] == ""
