"""`kubectl apply` of the sample Checkout on a real cluster: the operator runs under its own
ServiceAccount and RBAC (no cluster-admin), the Checkout is Ready because real pods became ready,
`kubectl get checkouts` says so, and the pods run as the charts say."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e_kind.conftest import OPERATOR_NAMESPACE, SERVICES, Platform

pytestmark = pytest.mark.e2e


def _operator_pod(platform: Platform) -> dict:
    pods = platform.cluster.get(
        "pods", "-n", OPERATOR_NAMESPACE, "-l", "app.kubernetes.io/name=checkout-operator"
    )["items"]
    assert len(pods) == 1, pods
    return pods[0]


def test_the_operator_runs_under_its_own_service_account_only(platform: Platform) -> None:
    pod = _operator_pod(platform)
    account = pod["spec"]["serviceAccountName"]
    assert account not in ("", "default")
    subject = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{account}"

    def can(*args: str) -> bool:
        answer = platform.cluster.kubectl("auth", "can-i", *args, "--as", subject, check=False)
        return answer.stdout.strip() == "yes"

    # What it needs ...
    assert can("patch", "checkouts.checkout.platform.io/status", "-n", platform.namespace)
    assert can("create", "deployments.apps", "-n", platform.namespace)
    assert can("create", "secrets", "-n", platform.namespace)
    # ... and not what it does not: no cluster-admin shortcut.
    assert not can("*", "*")
    assert not can("create", "clusterrolebindings.rbac.authorization.k8s.io")
    assert not can("delete", "nodes")
    bindings = platform.cluster.get("clusterrolebindings")["items"]
    for binding in bindings:
        subjects = binding.get("subjects") or []
        if any(s.get("name") == account for s in subjects):
            assert binding["roleRef"]["name"] != "cluster-admin", binding["metadata"]["name"]


def test_the_checkout_is_ready_because_its_pods_are(platform: Platform) -> None:
    platform.wait_settled()
    # The phase follows the Deployments' status through their watch: a moment after they settled.
    checkout = platform.cluster.wait_for(
        lambda: (c := platform.checkout()).get("status", {}).get("phase") == "Ready" and c,
        timeout=60,
        what="phase Ready once no rollout runs",
    )
    status = checkout["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert status["phase"] == "Ready"
    assert status["observedGeneration"] == checkout["metadata"]["generation"]
    for service in SERVICES:
        assert conditions[f"{service.capitalize()}Available"]["status"] == "True"
        deployment = platform.cluster.get(
            "deployment", f"{platform.name}-{service}", "-n", platform.namespace
        )
        wanted = deployment["spec"]["replicas"]
        assert deployment["status"].get("availableReplicas") == wanted
        database = platform.cluster.get(
            "statefulset", f"{platform.name}-{service}-mongodb", "-n", platform.namespace
        )
        assert database["status"].get("readyReplicas") == 1
    assert conditions["StorefrontAvailable"]["status"] == "True"
    shop = platform.cluster.get(
        "deployment", f"{platform.name}-storefront", "-n", platform.namespace
    )
    assert shop["status"].get("availableReplicas") == shop["spec"]["replicas"]
    table = platform.cluster.kubectl("get", "checkouts", "-n", platform.namespace).stdout
    header, *rows = table.splitlines()
    assert header.split()[:4] == ["NAME", "READY", "PHASE", "HOST"]
    assert any(row.split()[:4] == [platform.name, "True", "Ready", platform.host] for row in rows)


def test_pods_run_as_the_charts_say(platform: Platform) -> None:
    platform.wait_settled()
    pods = platform.pods()
    # One service pod and one database pod each, and the storefront's pod.
    assert len(pods) == 2 * len(SERVICES) + 1
    for pod in pods:
        spec, status = pod["spec"], pod["status"]
        assert status["phase"] == "Running"
        assert spec["securityContext"].get("runAsNonRoot") is True, pod["metadata"]["name"]
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert "readinessProbe" in container and "livenessProbe" in container
        assert all(c["ready"] for c in status["containerStatuses"])
    for service in (*SERVICES, "storefront"):
        api = [p for p in platform.pods(service) if "mongodb" not in p["metadata"]["name"]]
        assert api, f"no {service} pod"
        image = api[0]["spec"]["containers"][0]["image"]
        assert image.startswith(f"checkout/{service}:")
        # The process really runs as the unprivileged user, on a read-only root filesystem, and
        # is the image's `python -m services.<name>` as PID 1 (so it gets the pod's SIGTERM, not
        # a shell that would ignore it).
        name = api[0]["metadata"]["name"]
        probe = platform.cluster.kubectl(
            "-n",
            platform.namespace,
            "exec",
            name,
            "--",
            "python",
            "-c",
            "import os\n"
            "try:\n    open('/written-by-test', 'w')\n    print(os.getuid(), 'writable')\n"
            "except OSError:\n    print(os.getuid(), 'read-only')\n"
            "print(*open('/proc/1/cmdline').read().split('\\0')[:3])",
        ).stdout.split()
        assert probe == ["10001", "read-only", "python", "-m", f"services.{service}"], name


def _tree_digest() -> str:
    """sha256 over every .py file of services/, by relative path (the code the images carry)."""
    root = Path(__file__).resolve().parents[2] / "services"
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


DIGEST_IN_POD = """
import hashlib, pathlib, services
root = pathlib.Path(services.__file__).parent
digest = hashlib.sha256()
for path in sorted(root.rglob("*.py")):
    digest.update(str(path.relative_to(root)).encode() + b"\\0" + path.read_bytes())
print(digest.hexdigest())
"""


def test_every_service_pod_runs_the_code_of_this_tree(platform: Platform) -> None:
    platform.wait_settled()
    # An image build that reused a stale cached wheel would run old code under a new tag.
    expected = _tree_digest()
    for service in SERVICES:
        (pod,) = [p for p in platform.pods(service) if "mongodb" not in p["metadata"]["name"]]
        found = platform.cluster.kubectl(
            "-n",
            platform.namespace,
            "exec",
            pod["metadata"]["name"],
            "--",
            "python",
            "-c",
            DIGEST_IN_POD,
        ).stdout.strip()
        assert found == expected, f"{service} runs other code than this tree"


# The operator's code and the charts it renders, as in the image (operator/Dockerfile): the charts'
# built dependencies (charts/*/charts, Chart.lock) are made in the image, so they are left out.
OPERATOR_FILES_DIGEST = """
import hashlib, pathlib, sys
digest = hashlib.sha256()
for name, root, pattern in (("code", sys.argv[1], "*.py"), ("charts", sys.argv[2], "*")):
    root = pathlib.Path(root)
    for path in sorted(p for p in root.rglob(pattern) if p.is_file()):
        relative = path.relative_to(root)
        if "__pycache__" in relative.parts or (name == "charts" and (
            relative.parts[1:2] == ("charts",) or relative.parts[1:] == ("Chart.lock",)
        )):
            continue
        digest.update(f"{name}/{relative}".encode() + b"\\0" + path.read_bytes())
print(digest.hexdigest())
"""


def test_the_operator_pod_runs_the_code_and_charts_of_this_tree(platform: Platform) -> None:
    # A file .dockerignore drops (or a COPY that misses one) would leave the operator without it.
    root = Path(__file__).resolve().parents[2]
    expected = subprocess.run(
        [
            sys.executable,
            "-c",
            OPERATOR_FILES_DIGEST,
            str(root / "operator" / "checkout_operator"),
            str(root / "charts"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    pod = _operator_pod(platform)["metadata"]["name"]
    found = platform.cluster.kubectl(
        "-n",
        OPERATOR_NAMESPACE,
        "exec",
        pod,
        "--",
        "python",
        "-c",
        OPERATOR_FILES_DIGEST,
        "/app/checkout_operator",
        "/app/charts",
    ).stdout.strip()
    assert found == expected, "the operator image holds other code or charts than this tree"
