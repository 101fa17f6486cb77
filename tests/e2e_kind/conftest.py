"""The platform on the run's kind cluster, the way people use it: the images built from the
project's Dockerfiles and loaded into kind, the operator installed by its chart
(`scripts/cluster.sh operator`), then `kubectl apply -f k8s/checkout-sample.yaml` until the
Checkout is Ready, the sample catalogue loaded and an admin made. REST goes through Traefik on
127.0.0.1 (kind's port mapping) with the sample's host.

Made once per run under a machine-wide lock (the pytest-xdist workers share it), like the
cluster itself; the time to Ready is measured and printed. When something fails, the Checkout's
status, events and the logs of its pods are printed (`explain`).
"""

from __future__ import annotations

import base64
import copy
import fcntl
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e_kind import upgrade
from tests.infra.kind import KindCluster, record_figure, state_dir

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "k8s" / "checkout-sample.yaml"
OPERATOR_NAMESPACE = "checkout-system"
SERVICES = ("auth", "product", "cart", "order")
READY_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Platform:
    """The sample Checkout behind the kind ingress: requests go to 127.0.0.1 with its host."""

    cluster: KindCluster
    name: str
    namespace: str
    host: str
    port: int
    admin_email: str
    admin_password: str

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Host": self.host},
            timeout=30.0,
            **kwargs,
        )

    def checkout(self) -> dict[str, Any]:
        result: dict[str, Any] = self.cluster.get("checkout", self.name, "-n", self.namespace)
        return result

    def pods(self, service: str | None = None) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={self.name}"
        if service:
            selector += f",app.kubernetes.io/name={service}"
        items: list[dict[str, Any]] = self.cluster.get(
            "pods", "-n", self.namespace, "-l", selector
        )["items"]
        return items

    def settled(self) -> bool:
        """No rollout in progress: every Deployment at its replicas, all of them updated and
        available, and no pod terminating."""
        deployments = self.cluster.get(
            "deployments", "-n", self.namespace, "-l", f"app.kubernetes.io/instance={self.name}"
        )["items"]
        for item in deployments:
            wanted, status = item["spec"]["replicas"], item["status"]
            if item["metadata"]["generation"] != status.get("observedGeneration"):
                return False
            counts = (status.get(k) for k in ("replicas", "updatedReplicas", "availableReplicas"))
            if any(count != wanted for count in counts):
                return False
        return not any(p["metadata"].get("deletionTimestamp") for p in self.pods())

    def wait_settled(self, timeout: float = 300) -> None:
        self.cluster.wait_for(self.settled, timeout=timeout, what="no rollout running")

    def explain(self) -> str:
        """The Checkout's status, its events and its pods' logs, for a failure message."""
        parts = [
            self.cluster.kubectl(
                "-n", self.namespace, "get", "checkout", self.name, "-o", "yaml", check=False
            ).stdout,
            self.cluster.describe(self.namespace),
            self.cluster.kubectl(
                "-n",
                OPERATOR_NAMESPACE,
                "logs",
                "deployment/checkout-operator-checkout-operator",
                "--tail=60",
                check=False,
            ).stdout,
        ]
        return "\n".join(parts)


def explain_if_failed(platform: Platform, request: pytest.FixtureRequest) -> None:
    """After a test that used ``platform``: its status, events and logs if the test failed."""
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        print(f"\n=== {platform.namespace}/{platform.name} after the failure ===")
        print(platform.explain())


def _ready(cluster: KindCluster, name: str, namespace: str) -> bool:
    checkout = cluster.get("checkout", name, "-n", namespace)
    conditions = {c["type"]: c["status"] for c in checkout.get("status", {}).get("conditions", [])}
    return conditions.get("Ready") == "True"


def apply_and_wait_ready(
    cluster: KindCluster, manifest: dict[str, Any], timeout: float = READY_TIMEOUT_SECONDS
) -> float:
    """`kubectl apply` a Checkout and wait for its Ready condition; returns the seconds it took."""
    name = manifest["metadata"]["name"]
    namespace = manifest["metadata"].get("namespace", "default")
    began = time.monotonic()
    cluster.apply(yaml.safe_dump(manifest))
    cluster.wait_for(
        lambda: _ready(cluster, name, namespace),
        timeout=timeout,
        what=f"Checkout {namespace}/{name} Ready",
    )
    return time.monotonic() - began


def small_checkout(name: str, namespace: str, keep_data: bool) -> dict[str, Any]:
    """The sample as a second, small Checkout in ``namespace``: 64Mi volumes, no ingress, small
    requests (the sample platform already holds much of the node's two CPUs)."""
    manifest: dict[str, Any] = copy.deepcopy(yaml.safe_load(SAMPLE.read_text()))
    manifest["metadata"] = {"name": name, "namespace": namespace}
    manifest["spec"]["mongodb"]["keepDataOnDelete"] = keep_data
    manifest["spec"]["mongodb"]["storage"]["size"] = "64Mi"
    manifest["spec"]["ingress"] = {"enabled": False}
    small = {
        "requests": {"cpu": "10m", "memory": "96Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    manifest["spec"]["mongodb"]["resources"] = small
    for service in manifest["spec"]["services"].values():
        service["resources"] = small
    manifest["spec"].setdefault("storefront", {})["resources"] = small
    return manifest


def read_claim(
    cluster: KindCluster, namespace: str, claim: str, checkout: str, script: str, *args: str
) -> Any:
    """Run the Python ``script`` (with ``args``) in a pod of ours that mounts ``claim`` read-only
    at /backups, and return the JSON it prints last. The pod runs the image of ``checkout``'s
    backup CronJob (the operator's, already on the node), as non-root with no API token."""
    cronjob = cluster.get("cronjob", f"{checkout}-backup", "-n", namespace)
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    image = container["image"]
    overrides = {
        "apiVersion": "v1",
        "spec": {
            "automountServiceAccountToken": False,
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001},
            "containers": [
                {
                    "name": "read",
                    "image": image,
                    "imagePullPolicy": container.get("imagePullPolicy", "IfNotPresent"),
                    "command": ["python", "-c", script, *args],
                    "volumeMounts": [{"name": "b", "mountPath": "/backups", "readOnly": True}],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
            "volumes": [
                {"name": "b", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
            ],
        },
    }
    ran = cluster.kubectl(
        "-n", namespace, "run", f"read-{secrets.token_hex(3)}", "--rm", "-i", "--quiet",
        "--restart=Never", f"--image={image}", f"--overrides={json.dumps(overrides)}",
        timeout=180,
    )  # fmt: skip
    printed = [line for line in ran.stdout.splitlines() if line.startswith(("[", "{"))]
    assert printed, f"the claim reader printed no JSON: {ran.stdout!r} {ran.stderr!r}"
    return json.loads(printed[-1])


def _install_operator(cluster: KindCluster) -> None:
    try:
        cluster.run_script("operator")
    except RuntimeError as error:
        pytest.fail(str(error))


def _make_admin(cluster: KindCluster, name: str, namespace: str, host: str) -> tuple[str, str]:
    """The sample's admin, made once per cluster; its credentials are kept in a Secret there, so
    they live and die with the cluster."""
    secret = f"{name}-test-admin"
    found = cluster.kubectl("-n", namespace, "get", "secret", secret, "-o", "json", check=False)
    if found.returncode == 0:
        data = json.loads(found.stdout)["data"]
        return tuple(base64.b64decode(data[k]).decode() for k in ("email", "password"))  # type: ignore[return-value]
    email, password = f"admin@{host}", secrets.token_urlsafe(18)
    cluster.kubectl(
        "-n",
        namespace,
        "exec",
        "-i",
        f"deployment/{name}-auth",
        "--",
        "python",
        "-m",
        "services.auth",
        "create-admin",
        "--email",
        email,
        input=password + "\n",
    )
    cluster.kubectl(
        "-n",
        namespace,
        "create",
        "secret",
        "generic",
        secret,
        f"--from-literal=email={email}",
        f"--from-literal=password={password}",
    )
    return email, password


def _load_catalogue(cluster: KindCluster, name: str, namespace: str) -> None:
    cluster.kubectl(
        "-n",
        namespace,
        "exec",
        f"deployment/{name}-product",
        "--",
        "python",
        "-m",
        "services.product",
        "load-catalogue",
    )


def provision(cluster: KindCluster, manifest: dict[str, Any]) -> tuple[Platform, float]:
    """`kubectl apply` a Checkout (the operator must be installed), wait until it is Ready, load
    the sample catalogue and make its admin; returns it and the seconds to Ready."""
    name = manifest["metadata"]["name"]
    namespace = manifest["metadata"].get("namespace", "default")
    host = manifest["spec"]["ingress"]["host"]
    try:
        seconds = apply_and_wait_ready(cluster, manifest)
    except AssertionError:
        partial = Platform(cluster, name, namespace, host, 0, "", "")
        pytest.fail(f"Checkout {namespace}/{name} never got Ready:\n{partial.explain()}")
    _load_catalogue(cluster, name, namespace)
    email, password = _make_admin(cluster, name, namespace, host)
    return Platform(cluster, name, namespace, host, cluster.http_port, email, password), seconds


@pytest.fixture(scope="session")
def platform(kind_cluster: KindCluster) -> Platform:
    sample = yaml.safe_load(SAMPLE.read_text())
    name = sample["metadata"]["name"]
    namespace = sample["metadata"]["namespace"]
    host = sample["spec"]["ingress"]["host"]
    with open(state_dir() / f"{kind_cluster.name}-platform.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        exists = (
            kind_cluster.kubectl("-n", namespace, "get", "checkout", name, check=False).returncode
            == 0
        )
        if exists:
            email, password = _make_admin(kind_cluster, name, namespace, host)
            port = kind_cluster.http_port
            return Platform(kind_cluster, name, namespace, host, port, email, password)
        return _made_by_an_upgrade(kind_cluster, sample)


def _made_by_an_upgrade(cluster: KindCluster, sample: dict[str, Any]) -> Platform:
    """The last release installed and its sample made Ready, then this tree's operator installed
    over it under the shopper load (`upgrade`); the measured report is kept for test_upgrade. If
    the release cannot be installed this tree's operator makes the platform, and test_upgrade
    fails with the reason."""
    version, commit = upgrade.last_release()
    report = upgrade.UpgradeReport(
        from_version=version, from_commit=commit, cluster_uid=upgrade.cluster_uid(cluster)
    )
    began = time.monotonic()
    try:
        cluster.run_script("release", version)
    except RuntimeError as error:
        report.error = f"release {version} could not be installed: {error}"
        report.save(cluster)
        _install_operator(cluster)
        made, seconds = provision(cluster, sample)
        record_figure(f"checkout time to Ready: {seconds:.1f} s (kubectl apply of the sample)")
        return made
    record_figure(f"release {version} installed in {time.monotonic() - began:.0f}s")
    made, seconds = provision(cluster, sample)
    record_figure(
        f"checkout time to Ready: {seconds:.1f} s (kubectl apply of the sample, release {version})"
    )
    began = time.monotonic()
    cluster.run_script("build")
    record_figure(f"images built and loaded in {time.monotonic() - began:.0f}s")
    try:
        upgrade.upgrade_under_load(made, lambda: cluster.run_script("operator"), report)
    except (RuntimeError, AssertionError) as error:
        report.error = f"the upgrade to this tree failed: {error}"
        report.save(cluster)
        _install_operator(cluster)  # this tree's operator, so the other tests can go on
        made.wait_settled(timeout=600)
        return made
    report.save(cluster)
    record_figure(report.line())
    record_figure(report.details())
    return made
