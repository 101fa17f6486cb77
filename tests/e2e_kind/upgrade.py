"""The upgrade from the previous release to this tree, under the shopper load: how the kind tests'
shared platform is made (`conftest.platform`), measured, and kept for `test_upgrade` to judge.

1. ``scripts/cluster.sh release`` installs the operator of the last release in RELEASES from its
   own tree (taken from git history), with its images;
2. the sample Checkout is applied and made Ready by that operator, as a shop running it would be;
3. this tree's images are built and loaded (``cluster.sh build``), then, while 4 shoppers load the
   sample through the ingress, ``cluster.sh operator`` applies this tree's CRDs and upgrades the
   operator chart, and the new operator rolls what its charts render differently;
4. the upgrade is over when the Checkout reports the new operator version, its phase is Ready
   (every rollout done) and no pod is terminating.

Measured: every request's outcome, the Ready condition once a second throughout, and, for every
workload of the sample's, Traefik's and kube-system's namespaces, whether its pod template changed
and whether its pods were kept (same uid, no restart). The report is a JSON file per cluster.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from tests.e2e_kind.load import BackgroundLoad
from tests.infra.kind import KindCluster, state_dir

if TYPE_CHECKING:
    from tests.e2e_kind.conftest import Platform

ROOT = Path(__file__).resolve().parents[2]
RELEASES = ROOT / "RELEASES"
OPERATOR_NAMESPACE = "checkout-system"
OPERATOR_DEPLOYMENT = "checkout-operator-checkout-operator"
WATCHED_NAMESPACES = ("traefik", "kube-system")
WORKLOAD_KINDS = ("deployments", "statefulsets", "daemonsets")
UPGRADE_TIMEOUT_SECONDS = 900


def last_release() -> tuple[str, str]:
    """(version, commit) of the last line of RELEASES."""
    rows = [line.split() for line in RELEASES.read_text().splitlines()]
    version, commit = [r[:2] for r in rows if r and not r[0].startswith("#")][-1]
    return version, commit


def operator_version(cluster: KindCluster) -> str:
    """What the installed operator reports as ``status.operatorVersion`` (its chart sets it)."""
    deployment = cluster.get("deployment", OPERATOR_DEPLOYMENT, "-n", OPERATOR_NAMESPACE)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    return str(env["CHECKOUT_OPERATOR_VERSION"])


@dataclass(frozen=True)
class Snapshot:
    """Every workload's pod template and its live pods (uid and restarts) in some namespaces."""

    templates: dict[str, str]
    """"namespace/kind/name" -> its spec.template as canonical JSON."""
    pods: dict[str, dict[str, tuple[str, int]]]
    """"namespace/kind/name" -> pod name -> (uid, restarts summed over its containers)."""

    @classmethod
    def take(cls, cluster: KindCluster, namespaces: tuple[str, ...]) -> Snapshot:
        templates: dict[str, str] = {}
        pods: dict[str, dict[str, tuple[str, int]]] = {}
        for namespace in namespaces:
            owners = {}  # ReplicaSet -> its Deployment
            for rs in cluster.get("replicasets", "-n", namespace)["items"]:
                for ref in rs["metadata"].get("ownerReferences", []):
                    owners[("ReplicaSet", rs["metadata"]["name"])] = ("Deployment", ref["name"])
            for kind in WORKLOAD_KINDS:
                for item in cluster.get(kind, "-n", namespace)["items"]:
                    key = f"{namespace}/{item['kind']}/{item['metadata']['name']}"
                    templates[key] = json.dumps(item["spec"]["template"], sort_keys=True)
                    pods.setdefault(key, {})
            for pod in cluster.get("pods", "-n", namespace)["items"]:
                meta = pod["metadata"]
                if meta.get("deletionTimestamp") or not meta.get("ownerReferences"):
                    continue
                ref = meta["ownerReferences"][0]
                kind, name = owners.get((ref["kind"], ref["name"]), (ref["kind"], ref["name"]))
                restarts = sum(
                    c.get("restartCount", 0)
                    for c in (pod.get("status") or {}).get("containerStatuses", [])
                )
                pods.setdefault(f"{namespace}/{kind}/{name}", {})[meta["name"]] = (
                    meta["uid"],
                    restarts,
                )
        return cls(templates, pods)


def restarted_unchanged(before: Snapshot, after: Snapshot) -> tuple[list[str], list[str], int]:
    """The workloads whose template changed (rolled), the pods of unchanged workloads that were
    replaced or restarted (each in words), and how many such pods were kept."""
    rolled, replaced, kept = [], [], 0
    for key, template in sorted(before.templates.items()):
        if after.templates.get(key) != template:
            rolled.append(key)
            continue
        now = after.pods.get(key, {})
        for pod, (uid, restarts) in sorted(before.pods.get(key, {}).items()):
            if pod not in now or now[pod][0] != uid:
                replaced.append(f"{key}: pod {pod} was replaced")
            elif now[pod][1] != restarts:
                replaced.append(f"{key}: pod {pod} restarted ({restarts} -> {now[pod][1]})")
            else:
                kept += 1
    return rolled, replaced, kept


class ReadyWatch:
    """The Checkout's Ready condition, looked at once a second in a thread of its own."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.looks = 0
        self.ready_looks = 0
        self.not_ready: list[str] = []
        self.unread = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                status = self.platform.checkout().get("status") or {}
            except Exception:  # the API server busy: no look, not a Checkout that is not Ready
                self.unread += 1
                continue
            self.looks += 1
            ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), {})
            if ready.get("status") == "True":
                self.ready_looks += 1
            else:
                self.not_ready.append(f"Ready {ready.get('status')}: {ready.get('message')}")

    def __enter__(self) -> ReadyWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@dataclass
class UpgradeReport:
    from_version: str = ""
    from_commit: str = ""
    old_operator: str = ""
    new_operator: str = ""
    reported: str = ""
    """status.operatorVersion once the upgrade was over."""
    requests: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    looks: int = 0
    ready_looks: int = 0
    not_ready: list[str] = field(default_factory=list)
    rolled: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    kept: int = 0
    cluster_uid: str = ""
    """kube-system's uid: the report of this cluster, not of an earlier one of the same name."""
    error: str = ""
    """Why the release could not be installed or upgraded (the platform was then made by this
    tree's operator alone)."""

    def line(self) -> str:
        return f"cluster upgrade: {self.requests} requests, {self.failed} failed"

    def details(self) -> str:
        return (
            f"cluster upgrade from {self.from_version} ({self.from_commit[:12]}): operator "
            f"{self.old_operator} -> {self.new_operator} in {self.seconds:.0f} s; "
            f"{len(self.rolled)} workloads rolled (their template changed), {self.kept} pods of "
            f"unchanged workloads kept; Ready at {self.ready_looks}/{self.looks} looks"
        )

    def save(self, cluster: KindCluster) -> None:
        report_path(cluster).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, cluster: KindCluster) -> UpgradeReport | None:
        path = report_path(cluster)
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))


def report_path(cluster: KindCluster) -> Path:
    return state_dir() / f"{cluster.name}-upgrade.json"


def cluster_uid(cluster: KindCluster) -> str:
    return str(cluster.get("namespace", "kube-system")["metadata"]["uid"])


def upgrade_under_load(
    platform: Platform, upgrade: Callable[[], None], report: UpgradeReport
) -> UpgradeReport:
    """``upgrade()`` (this tree's operator installed over the release's) under the shopper load,
    after 5 s of it, until the Checkout reports the new version and every rollout is done, with
    5 s more; fills ``report`` in."""
    cluster = platform.cluster
    namespaces = (platform.namespace, *WATCHED_NAMESPACES)
    before = Snapshot.take(cluster, namespaces)
    report.old_operator = operator_version(cluster)
    with ReadyWatch(platform) as watch, BackgroundLoad(platform) as load:
        time.sleep(5)
        began = time.monotonic()
        upgrade()
        report.new_operator = operator_version(cluster)

        def over() -> bool:
            status = platform.checkout().get("status") or {}
            return (
                status.get("operatorVersion") == report.new_operator
                and status.get("phase") == "Ready"
                and status.get("observedGeneration")
                == platform.checkout()["metadata"]["generation"]
                and platform.settled()
            )

        cluster.wait_for(over, timeout=UPGRADE_TIMEOUT_SECONDS, what="the upgrade rolled out")
        report.seconds = time.monotonic() - began
        time.sleep(5)
        result = load.stop()
    report.reported = str((platform.checkout().get("status") or {}).get("operatorVersion"))
    report.requests, report.failed = result.sent, result.failed
    report.failures = result.samples[:20]
    report.looks, report.ready_looks = watch.looks, watch.ready_looks
    report.not_ready = watch.not_ready[:20]
    after = Snapshot.take(cluster, namespaces)
    report.rolled, report.replaced, report.kept = restarted_unchanged(before, after)
    return report


def explain_missing(cluster: KindCluster) -> str:
    """Why test_upgrade has no report of this cluster to judge."""
    return (
        f"no upgrade report for cluster {cluster.name}: its shared platform was made before this "
        "run (a kept cluster). Delete Checkout demo and Secret demo-test-admin in namespace "
        "default to make it again by an upgrade"
    )


def fail_or_skip(message: str) -> NoReturn:
    """Under CI a missing report is a failure; on a developer's kept cluster a skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
