"""The charts' NetworkPolicies, read the way a NetworkPolicy implementation reads them: every pod
the charts render (the umbrella's four services and their databases, the storefront, the
operator's pod) plus the pods around them (Traefik, cluster DNS, a pod of another namespace, an
unrelated pod of the same namespace), and for every pair and port whether the policies let the
connection through (the source's egress and the destination's ingress). The whole matrix must be
exactly the expected one: deny by default; the ingress controller to the public port of the
services and the storefront; the operator to the services' (it reads their key reports; the
storefront has no keys); the services that call each other, and the storefront calling all four,
on that port; each service to its own database; the release's backup and restore Jobs
(charts/backup) to every database of the release, never another release's; every workload to
DNS; nothing else.

The kind test cluster's network plugin (static ptp, see k8s/offline) does not enforce
NetworkPolicies, so this is where their selectors are tested (docs/kubernetes.md)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.charts.conftest import SERVICES
from tests.infra.helm import WORKLOADS, Helm

NAMESPACE = "shop"
CALLS = {("auth", "cart"), ("auth", "order"), ("cart", "product"), ("order", "product"),
         ("order", "cart")} | {("storefront", service) for service in SERVICES}  # fmt: skip


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: dict[str, str] = field(hash=False)
    ports: dict[str, int] = field(hash=False, default_factory=dict)  # named container ports


def _matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


NAMESPACE_LABELS = {
    ns: {"kubernetes.io/metadata.name": ns}
    for ns in (NAMESPACE, "traefik", "checkout-system", "kube-system", "elsewhere")
}


def _peer_matches(peer: dict[str, Any], pod: Pod, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        return False  # no rule here is by address
    if "namespaceSelector" in peer:
        if not _matches(peer["namespaceSelector"], NAMESPACE_LABELS[pod.namespace]):
            return False
    elif pod.namespace != policy_namespace:
        return False
    return _matches(peer.get("podSelector", {}), pod.labels)


def _port_matches(rule_ports: list[dict[str, Any]] | None, destination: Pod, port: int) -> bool:
    if not rule_ports:
        return True
    for entry in rule_ports:
        wanted = entry.get("port")
        if wanted is None or wanted == port or destination.ports.get(str(wanted)) == port:
            return True
    return False


def _allowed(policies: list[dict[str, Any]], source: Pod, destination: Pod, port: int) -> bool:
    def direction(pod: Pod, kind: str, peers_key: str, other: Pod) -> bool:
        selecting = [
            p
            for p in policies
            if p["metadata"]["namespace"] == pod.namespace
            and _matches(p["spec"]["podSelector"], pod.labels)
            and kind in p["spec"].get("policyTypes", ["Ingress"])
        ]
        if not selecting:
            return True
        rules_key = kind.lower()
        for policy in selecting:
            for rule in policy["spec"].get(rules_key) or []:
                peers = rule.get(peers_key)
                if peers and not any(
                    _peer_matches(peer, other, policy["metadata"]["namespace"]) for peer in peers
                ):
                    continue
                if _port_matches(rule.get("ports"), destination, port):
                    return True
        return False

    return direction(source, "Egress", "to", destination) and direction(
        destination, "Ingress", "from", source
    )


def _rendered_pods(objects: list[dict[str, Any]], namespace: str) -> list[Pod]:
    pods = []
    for obj in objects:
        if obj["kind"] not in ("Deployment", "StatefulSet", "Job", "CronJob"):
            continue
        spec = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
        template = spec["template"]
        ports = {
            p["name"]: p["containerPort"]
            for c in template["spec"]["containers"]
            for p in c.get("ports", [])
            if "name" in p
        }
        pods.append(Pod(obj["metadata"]["name"], namespace, template["metadata"]["labels"], ports))
    return pods


@pytest.fixture(scope="module")
def world(helm: Helm) -> tuple[list[dict[str, Any]], dict[str, Pod]]:
    platform = helm.template("checkout", release="shop", namespace=NAMESPACE)
    operator = helm.template("checkout-operator", release="ops", namespace="checkout-system")
    backups = helm.template(
        "backup",
        {"target": {"claimName": "shop-backups"}, "restore": {"enabled": True, "claimName": "x"}},
        release="shop",
        namespace=NAMESPACE,
    )
    policies = [o for o in platform + operator + backups if o["kind"] == "NetworkPolicy"]
    pods = _rendered_pods(platform + backups, NAMESPACE)
    pods += _rendered_pods(operator, "checkout-system")
    # Another release's backup pod, in the same namespace.
    other = next(p for p in _rendered_pods(backups, NAMESPACE) if p.name == "shop-backup")
    pods.append(Pod("other-backup", NAMESPACE, {**other.labels, "app.kubernetes.io/instance": "o"}))
    pods += [
        Pod("traefik", "traefik", {"app.kubernetes.io/name": "traefik"}, {"web": 8000}),
        Pod("coredns", "kube-system", {"k8s-app": "kube-dns"}, {"dns": 53}),
        Pod("intruder", "elsewhere", {"app.kubernetes.io/name": "traefik"}, {"http": 8000}),
        Pod("neighbour", NAMESPACE, {"app": "something-else"}, {"http": 8000}),
    ]
    return policies, {pod.name: pod for pod in pods}


def _expected(source: str, destination: str, port: int) -> bool:
    api = {f"shop-{s}": s for s in SERVICES}
    workloads = {f"shop-{w}": w for w in WORKLOADS}
    database = {f"shop-{s}-mongodb": s for s in SERVICES}
    jobs = {"shop-backup", "shop-restore"}
    # "other-backup" (another release's backup pod, whose policy is not rendered here) counts as
    # a pod outside the charts: the databases below still refuse it.
    charted = workloads.keys() | database.keys() | jobs
    if source not in charted and destination not in charted:
        return True  # no policy selects either pod
    if destination in workloads:
        caller = workloads.get(source)
        # The operator reads the key reports of the services only: the storefront has no keys.
        admitted = ("traefik", "ops-checkout-operator") if destination in api else ("traefik",)
        return port == 8000 and (
            source in admitted or (caller is not None and (caller, workloads[destination]) in CALLS)
        )
    if destination in database:
        return port == 27017 and (api.get(source) == database[destination] or source in jobs)
    if destination in jobs:
        return False  # nothing calls a backup or a restore
    # From a chart's pod to a pod outside the charts: only a workload asking cluster DNS.
    return (source in workloads or source in jobs) and destination == "coredns" and port == 53


def test_every_connection_is_exactly_the_expected_one(
    world: tuple[list[dict[str, Any]], dict[str, Pod]],
) -> None:
    policies, pods = world
    # One per workload, one per database, one for the backup and restore Jobs.
    assert len(policies) == len(WORKLOADS) + len(SERVICES) + 1
    assert "shop-storefront" in pods
    wrong = []
    for source, destination in itertools.permutations(pods, 2):
        for port in (8000, 27017, 53):
            got = _allowed(policies, pods[source], pods[destination], port)
            if got != _expected(source, destination, port):
                wrong.append(f"{source} -> {destination}:{port} {'allowed' if got else 'denied'}")
    assert not wrong, "\n".join(wrong)


def test_every_policy_selects_rendered_pods(
    world: tuple[list[dict[str, Any]], dict[str, Pod]],
) -> None:
    policies, pods = world
    for policy in policies:
        selected = [
            p.name
            for p in pods.values()
            if p.namespace == NAMESPACE and _matches(policy["spec"]["podSelector"], p.labels)
        ]
        name = policy["metadata"]["name"]
        wanted = ["shop-backup", "shop-restore"] if name == "shop-backup" else [name]
        assert sorted(selected) == wanted, (name, selected)


def test_policies_can_be_turned_off(helm: Helm) -> None:
    values = {w: {"networkPolicy": {"enabled": False}} for w in WORKLOADS}
    objects = helm.template("checkout", values, release="shop", namespace=NAMESPACE)
    assert not [o for o in objects if o["kind"] == "NetworkPolicy"]
