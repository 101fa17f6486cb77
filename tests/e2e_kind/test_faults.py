"""Changes and faults on a real cluster, each under the shopper load through the ingress, on a
Checkout of its own with two replicas per service:

- a spec change that rolls every Deployment (new resources): zero failed requests (readiness
  probes, maxUnavailable 0, a preStop delay that lets the endpoints drain first);
- one pod of each service deleted at once: zero failed requests;
- a deleted Deployment and a deleted StatefulSet are put back by the operator, the data kept;
- each service's database pod restarted: a few 503s with Retry-After at most, never a 500 or any
  other failure, and nothing written before it is lost;
- paused (the ``checkout.platform.io/paused`` annotation), a deleted Service and Deployment stay
  deleted until it is removed;
- hibernated (``checkout.platform.io/hibernate``): no pod left, the volume claims kept; woken, the
  same orders.

The six tests run in this order on one Checkout (pytest keeps a file's tests in order)."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from tests.e2e_kind.conftest import SAMPLE, SERVICES, Platform, explain_if_failed, provision
from tests.e2e_kind.load import BackgroundLoad, LoadReport
from tests.infra.kind import KindCluster, record_figure

pytestmark = pytest.mark.e2e

REPLICAS = 2
# With the database down a service answers 503 with Retry-After; allowed per database restart.
MAX_503_PER_RESTART = 25


def _manifest(namespace: str) -> dict[str, Any]:
    manifest: dict[str, Any] = copy.deepcopy(yaml.safe_load(SAMPLE.read_text()))
    manifest["metadata"] = {"name": "shop", "namespace": namespace}
    manifest["spec"]["ingress"]["host"] = f"{namespace}.localhost"
    manifest["spec"]["mongodb"]["storage"]["size"] = "128Mi"
    manifest["spec"]["mongodb"]["keepDataOnDelete"] = False
    manifest["spec"]["mongodb"]["resources"] = _resources("10m")
    for service in manifest["spec"]["services"].values():
        service["replicas"] = REPLICAS
        service["resources"] = _resources("10m")
    manifest["spec"].setdefault("storefront", {})["resources"] = _resources("10m")
    return manifest


def _resources(cpu_request: str) -> dict[str, Any]:
    # Small requests: the node's two CPUs are shared with the sample platform and the tests
    # running beside this one (a pod the scheduler cannot place would stall the rollout).
    return {
        "requests": {"cpu": cpu_request, "memory": "96Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }


@pytest.fixture(scope="module")
def shop(platform: Platform) -> Iterator[Platform]:
    cluster = platform.cluster
    namespace = f"faults-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    # The whole platform runs under the restricted Pod Security Standard here, enforced.
    cluster.kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    made, seconds = provision(cluster, _manifest(namespace))
    record_figure(f"faults checkout ({REPLICAS} replicas per service) Ready in {seconds:.1f} s")
    made.wait_settled()
    yield made
    cluster.kubectl("-n", namespace, "delete", "checkout", made.name, "--wait=true", timeout=300)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def explained(shop: Platform, request: pytest.FixtureRequest) -> Iterator[Platform]:
    """The shop; its status, events and logs are printed when the test fails."""
    yield shop
    explain_if_failed(shop, request)


def _deployments(shop: Platform) -> dict[str, dict[str, Any]]:
    items = shop.cluster.get(
        "deployments", "-n", shop.namespace, "-l", f"app.kubernetes.io/instance={shop.name}"
    )["items"]
    return {item["metadata"]["name"]: item for item in items}


def _serving_pods(shop: Platform, service: str) -> list[str]:
    return [
        pod["metadata"]["name"]
        for pod in shop.pods(service)
        if "mongodb" not in pod["metadata"]["name"] and not pod["metadata"].get("deletionTimestamp")
    ]


def _without_a_failed_request(shop: Platform, what: str, change: Callable[[], None]) -> LoadReport:
    """``change`` (which waits until it is done) under the shopper load, after 5 s of it and with
    5 s more; the figure is printed, and no request may have failed."""
    with BackgroundLoad(shop) as load:
        time.sleep(5)
        began = time.monotonic()
        change()
        seconds = time.monotonic() - began
        time.sleep(5)
        report = load.stop()
    record_figure(
        f"cluster {what}: {report.sent} requests, {report.failed} failed ({seconds:.0f} s)"
    )
    print(report.summary())
    assert report.failed == 0, report.summary()
    return report


def test_a_spec_change_rolls_every_deployment_under_load_without_a_failed_request(
    explained: Platform,
) -> None:
    shop = explained
    before = {name: d["metadata"]["generation"] for name, d in _deployments(shop).items()}
    pods_before = {s: set(_serving_pods(shop, s)) for s in SERVICES}

    def roll() -> None:
        change = {
            "spec": {
                "services": {s: {"resources": _resources("15m")} for s in SERVICES},
                "storefront": {"resources": _resources("15m")},
            }
        }
        shop.cluster.kubectl(
            "-n", shop.namespace, "patch", "checkout", shop.name, "--type=merge",
            "-p", json.dumps(change),
        )  # fmt: skip
        shop.cluster.wait_for(
            lambda: all(
                d["metadata"]["generation"] > before[name] for name, d in _deployments(shop).items()
            ),
            timeout=120,
            what="the operator changed every Deployment",
        )
        shop.wait_settled(timeout=600)

    report = _without_a_failed_request(shop, "rolling update", roll)
    for service in SERVICES:
        after = set(_serving_pods(shop, service))
        assert len(after) == REPLICAS and not after & pods_before[service], (service, after)
    assert report.sent >= 100, report.summary()


def test_deleting_one_pod_of_each_service_under_load_fails_no_request(
    explained: Platform,
) -> None:
    shop = explained
    victims = [_serving_pods(shop, service)[0] for service in SERVICES]

    def delete() -> None:
        shop.cluster.kubectl("-n", shop.namespace, "delete", "pod", *victims, "--wait=false")
        shop.cluster.wait_for(
            lambda: not set(victims) & {p["metadata"]["name"] for p in shop.pods()},
            timeout=120,
            what="the deleted pods gone",
        )
        shop.wait_settled(timeout=300)

    _without_a_failed_request(shop, "pod deletion", delete)
    for service in SERVICES:
        assert len(_serving_pods(shop, service)) == REPLICAS


def _cart(shop: Platform, token: str) -> list[dict[str, Any]]:
    with shop.client() as http:
        answer = http.get("/api/v1/cart", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    lines: list[dict[str, Any]] = answer.json()["lines"]
    return lines


def _shopper_with_a_cart(shop: Platform) -> str:
    email = f"faults-{uuid.uuid4().hex[:8]}@example.com"
    credentials = {"email": email, "password": "faults shopper password"}
    with shop.client() as http:
        assert http.post("/api/v1/auth/register", json=credentials).status_code == 201
        signed = http.post("/api/v1/auth/token", json=credentials)
        assert signed.status_code == 200, signed.text
        token: str = signed.json()["accessToken"]
        product = http.get("/api/v1/products", params={"pageSize": 1}).json()["items"][0]
        added = http.post(
            "/api/v1/cart/items",
            headers={"Authorization": f"Bearer {token}"},
            json={"productId": product["id"], "quantity": 2},
        )
        assert added.status_code in (200, 201), added.text
    return token


def _put_back_seconds(cluster: KindCluster, shop: Platform, kind: str, name: str) -> float:
    uid = cluster.get(kind, name, "-n", shop.namespace)["metadata"]["uid"]
    began = time.monotonic()
    cluster.kubectl("-n", shop.namespace, "delete", kind, name, "--wait=true", timeout=180)

    def back() -> bool:
        found = cluster.kubectl("-n", shop.namespace, "get", kind, name, "-o", "json", check=False)
        if found.returncode != 0:
            return False
        item = json.loads(found.stdout)
        return bool(item["metadata"]["uid"] != uid and item.get("status", {}).get("readyReplicas"))

    cluster.wait_for(back, timeout=300, what=f"{kind} {name} put back and ready")
    return time.monotonic() - began


def test_a_deleted_deployment_and_statefulset_are_put_back_with_their_data(
    explained: Platform,
) -> None:
    shop, cluster = explained, explained.cluster
    token = _shopper_with_a_cart(shop)
    cart = _cart(shop, token)
    deployment = _put_back_seconds(cluster, shop, "deployment", f"{shop.name}-cart")
    # The StatefulSet goes with its pod; its claim stays and the new one mounts it again.
    statefulset = _put_back_seconds(cluster, shop, "statefulset", f"{shop.name}-cart-mongodb")
    shop.wait_settled(timeout=300)
    record_figure(
        f"cluster put back: deleted Deployment ready again in {deployment:.0f} s,"
        f" deleted StatefulSet in {statefulset:.0f} s"
    )
    cluster.wait_for(
        lambda: shop.checkout()["status"].get("phase") == "Ready", timeout=120, what="Ready"
    )
    assert _cart(shop, token) == cart


def _database_pod(shop: Platform, service: str) -> str:
    return f"{shop.name}-{service}-mongodb-0"


def _pod_ready(shop: Platform, name: str, uid: str) -> bool:
    found = shop.cluster.kubectl(
        "-n", shop.namespace, "get", "pod", name, "-o", "json", check=False
    )
    if found.returncode != 0:
        return False
    pod = json.loads(found.stdout)
    conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    return pod["metadata"]["uid"] != uid and conditions.get("Ready") == "True"


def _orders(shop: Platform, token: str) -> list[str]:
    """The shopper's order ids. Right after a wake Traefik may not have the new endpoints yet
    (its watch lags the Checkout's Ready): that one answer, 503 "no available server", is waited
    out for up to a minute; any other is a failure."""
    deadline = time.monotonic() + 60
    with shop.client() as http:
        while True:
            answer = http.get("/api/v1/orders", headers={"Authorization": f"Bearer {token}"})
            lagging = answer.status_code == 503 and "no available server" in answer.text
            if not lagging or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert answer.status_code == 200, answer.text
    return sorted(order["id"] for order in answer.json()["items"])


def test_a_database_restart_costs_a_few_503s_with_retry_after_and_no_data(
    explained: Platform,
) -> None:
    shop, cluster = explained, explained.cluster
    token = _shopper_with_a_cart(shop)
    with shop.client() as http:
        placed = http.post(
            "/api/v1/orders",
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
        )
    assert placed.status_code == 201, placed.text
    orders = _orders(shop, token)
    seconds: dict[str, float] = {}
    with BackgroundLoad(shop) as load:
        time.sleep(5)
        for service in SERVICES:
            pod = _database_pod(shop, service)
            uid = cluster.get("pod", pod, "-n", shop.namespace)["metadata"]["uid"]
            began = time.monotonic()
            cluster.kubectl("-n", shop.namespace, "delete", "pod", pod, "--wait=false")
            cluster.wait_for(
                lambda pod=pod, uid=uid: _pod_ready(shop, pod, uid),  # type: ignore[misc]
                timeout=300,
                what=f"{pod} back",
            )
            seconds[service] = time.monotonic() - began
            time.sleep(3)
        report = load.stop()
    unavailable = report.failures.get("503 retry-after", 0)
    others = {kind: n for kind, n in report.failures.items() if kind != "503 retry-after"}
    restarts = ", ".join(f"{s} {t:.0f} s" for s, t in seconds.items())
    record_figure(
        f"cluster database restart: {report.sent} requests, {unavailable} answered 503 with"
        f" Retry-After, {sum(others.values())} other failures (4 restarts: {restarts})"
    )
    print(report.summary())
    assert not others, report.summary()
    assert unavailable <= MAX_503_PER_RESTART * len(SERVICES), report.summary()
    # Nothing written before the restarts is lost.
    assert _orders(shop, token) == orders


def _annotate(shop: Platform, switch: str) -> None:
    shop.cluster.kubectl(
        "-n", shop.namespace, "annotate", "--overwrite", "checkout", shop.name, switch
    )  # fmt: skip


def _exists(shop: Platform, kind: str, name: str) -> bool:
    found = shop.cluster.kubectl("-n", shop.namespace, "get", kind, name, check=False)
    return found.returncode == 0


def test_a_paused_checkout_keeps_its_drift_until_unpaused(explained: Platform) -> None:
    shop, cluster = explained, explained.cluster
    _annotate(shop, "checkout.platform.io/paused=true")
    cluster.wait_for(
        lambda: shop.checkout()["status"].get("phase") == "Paused", timeout=60, what="Paused"
    )
    # A Deployment (its watch puts one back within a second) and a Service (the drift sweep).
    cluster.kubectl("-n", shop.namespace, "delete", "service", f"{shop.name}-product")
    cluster.kubectl("-n", shop.namespace, "delete", "deployment", f"{shop.name}-order")
    time.sleep(20)
    assert not _exists(shop, "service", f"{shop.name}-product")
    assert not _exists(shop, "deployment", f"{shop.name}-order")
    assert shop.checkout()["status"]["phase"] == "Paused"
    began = time.monotonic()
    _annotate(shop, "checkout.platform.io/paused-")
    cluster.wait_for(
        lambda: (
            _exists(shop, "service", f"{shop.name}-product")
            and _exists(shop, "deployment", f"{shop.name}-order")
        ),
        timeout=60,
        what="the Service and the Deployment put back once unpaused",
    )
    back = time.monotonic() - began
    cluster.wait_for(
        lambda: shop.checkout()["status"].get("phase") == "Ready", timeout=300, what="Ready"
    )
    shop.wait_settled(timeout=300)
    record_figure(f"cluster pause: drift kept for 20 s, put back {back:.0f} s after unpausing")


def test_hibernate_and_wake_keep_the_same_orders(explained: Platform) -> None:
    shop, cluster = explained, explained.cluster
    token = _shopper_with_a_cart(shop)
    with shop.client() as http:
        placed = http.post(
            "/api/v1/orders",
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
        )
    assert placed.status_code == 201, placed.text
    orders = _orders(shop, token)
    claims = {
        claim["metadata"]["uid"] for claim in cluster.get("pvc", "-n", shop.namespace)["items"]
    }
    began = time.monotonic()
    _annotate(shop, "checkout.platform.io/hibernate=true")
    cluster.wait_for(
        lambda: shop.checkout()["status"].get("phase") == "Hibernated" and not shop.pods(),
        timeout=300,
        what="Hibernated, no pod left",
    )
    asleep = time.monotonic() - began
    assert {
        claim["metadata"]["uid"] for claim in cluster.get("pvc", "-n", shop.namespace)["items"]
    } == claims
    began = time.monotonic()
    _annotate(shop, "checkout.platform.io/hibernate-")
    cluster.wait_for(
        lambda: shop.checkout()["status"].get("phase") == "Ready", timeout=600, what="Ready"
    )
    shop.wait_settled(timeout=300)
    awake = time.monotonic() - began
    record_figure(
        f"cluster hibernate: no pod left in {asleep:.0f} s, Ready again in {awake:.0f} s,"
        f" {len(orders)} orders kept"
    )
    assert _orders(shop, token) == orders
