"""`skaffold build`, then `skaffold run -p operator` on the run's kind cluster, checked by what a
developer would notice: the six images in the node, the operator Deployment rolled out with the
image skaffold built, the sample Checkout Ready with the service images skaffold built (the
operator's defaults, which skaffold set), and REST answering through the ingress.

The build and the run happen once, in the module's fixture, under the platform lock the platform
tests take to set the platform up (tests/e2e_kind/conftest.py); their times are recorded as a
cluster figure.
"""

from __future__ import annotations

import fcntl
import functools
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e_skaffold.conftest import Skaffold
from tests.infra.kind import ROOT, KindCluster, KubectlError, record_figure, state_dir

pytestmark = pytest.mark.e2e

SAMPLE = yaml.safe_load((ROOT / "k8s" / "checkout-sample.yaml").read_text())
OPERATOR_NAMESPACE = "checkout-system"
OPERATOR_DEPLOYMENT = "checkout-operator-checkout-operator"
# The four services and the storefront: each has its image, Deployment and Available condition.
SERVICES = ("auth", "product", "cart", "order", "storefront")
BUILD_TIMEOUT_SECONDS = 60 * 60
RUN_TIMEOUT_SECONDS = 30 * 60
READY_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Deployed:
    """What skaffold built (image name -> the tag it deployed) and the cluster it deployed to."""

    skaffold: Skaffold
    images: dict[str, str]

    @property
    def cluster(self) -> KindCluster:
        return self.skaffold.cluster


def _built_images(path: str) -> dict[str, str]:
    """`skaffold build --file-output`: {"builds": [{"imageName": ..., "tag": ...}]}. A tag of an
    image only loaded into kind (never pushed) has no digest; one that was pushed ends in
    @sha256:..., which the Deployments carry too."""
    builds = json.loads(Path(path).read_text())["builds"]
    return {build["imageName"]: build["tag"] for build in builds}


@pytest.fixture(scope="module")
def deployed(skaffold: Skaffold) -> Deployed:
    cluster = skaffold.cluster
    output = str(skaffold.work / "build.json")
    with open(state_dir() / f"{cluster.name}-platform.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        began = time.monotonic()
        skaffold.run(
            "build",
            "-p",
            skaffold.profiles,
            "--file-output",
            output,
            timeout=BUILD_TIMEOUT_SECONDS,
            log="build.log",
        )
        built = time.monotonic()
        # The same cache file: `skaffold run` finds the images just built and deploys them.
        skaffold.run("run", "-p", skaffold.profiles, timeout=RUN_TIMEOUT_SECONDS, log="run.log")
        ran = time.monotonic()
        record_figure(
            f"skaffold: build {built - began:.0f} s, run -p {skaffold.profiles} {ran - built:.0f} s"
            " (images built and loaded into kind, operator upgraded, sample applied)"
        )
    built = _built_images(output)
    deployed = _deployed_images((skaffold.work / "run.log").read_text())
    # `skaffold run` normally finds the images `skaffold build` made in the shared cache file; one
    # CI run saw it build all six again (with other image ids) and deploy those, so what is
    # checked below is what `skaffold run` says it deployed, and both commands built all six.
    assert set(built) == set(deployed), (built, deployed)
    return Deployed(skaffold, deployed)


def _deployed_images(log: str) -> dict[str, str]:
    """The "Tags used in deployment:" list of `skaffold run`'s output: {image name: tag}."""
    tags: dict[str, str] = {}
    lines = log.splitlines()
    start = lines.index("Tags used in deployment:") + 1
    for line in lines[start:]:
        if not line.startswith(" - ") or " -> " not in line:
            break
        name, _, tag = line[3:].partition(" -> ")
        tags[name.strip()] = tag.strip()
    return tags


def _explain(deployed: Deployed) -> str:
    cluster = deployed.cluster
    parts = [
        f"skaffold built: {deployed.images}",
        cluster.describe(OPERATOR_NAMESPACE),
        cluster.describe(SAMPLE["metadata"]["namespace"]),
        (deployed.skaffold.work / "run.log").read_text()[-4000:],
    ]
    return "\n".join(parts)


def _rolled_out(cluster: KindCluster, namespace: str, name: str, image: str) -> bool:
    """The Deployment runs `image` everywhere: its template names it, every replica is updated
    and available, and no pod of an older ReplicaSet is left."""
    deployment = cluster.get("deployment", name, "-n", namespace)
    spec, status = deployment["spec"], deployment.get("status", {})
    if [c["image"] for c in spec["template"]["spec"]["containers"]][:1] != [image]:
        return False
    replicas = spec.get("replicas", 1)
    settled = (
        status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
        and status.get("updatedReplicas") == replicas
        and status.get("availableReplicas") == replicas
        and status.get("replicas") == replicas
    )
    if not settled:
        return False
    selector = ",".join(f"{k}={v}" for k, v in spec["selector"]["matchLabels"].items())
    pods = cluster.get("pods", "-n", namespace, "-l", selector)["items"]
    running = [p for p in pods if p["metadata"].get("deletionTimestamp") is None]
    return bool(running) and all(p["spec"]["containers"][0]["image"] == image for p in running)


def test_the_images_skaffold_built_are_in_the_node(deployed: Deployed) -> None:
    assert set(deployed.images) == {f"checkout/{s}" for s in SERVICES} | {"checkout/operator"}
    cluster = deployed.cluster
    nodes = [n["metadata"]["name"] for n in cluster.get("nodes")["items"]]
    docker = deployed.skaffold.tool("docker")
    for node in nodes:
        listing = json.loads(
            _run([docker, "exec", node, "crictl", "images", "-o", "json"], deployed.skaffold.env)
        )
        tags = {tag for image in listing["images"] for tag in image.get("repoTags") or []}
        for tag in deployed.images.values():
            reference = tag.split("@", 1)[0]
            assert f"docker.io/{reference}" in tags or reference in tags, (
                f"{reference} (built by skaffold) is not in node {node}: {sorted(tags)}"
            )


def test_operator_rolled_out_with_the_image_skaffold_built(deployed: Deployed) -> None:
    image = deployed.images["checkout/operator"]
    try:
        deployed.cluster.wait_for(
            lambda: _rolled_out(deployed.cluster, OPERATOR_NAMESPACE, OPERATOR_DEPLOYMENT, image),
            timeout=300,
            what=f"{OPERATOR_DEPLOYMENT} rolled out with {image}",
        )
    except AssertionError as error:
        pytest.fail(f"{error}\n{_explain(deployed)}")
    deployment = deployed.cluster.get("deployment", OPERATOR_DEPLOYMENT, "-n", OPERATOR_NAMESPACE)
    labels = deployment["metadata"]["labels"]
    assert labels.get("app.kubernetes.io/managed-by") in {"skaffold", "Helm"}, labels
    # skaffold upgraded the release scripts/cluster.sh installed (tests/e2e_kind), rather than
    # installing a second operator beside it: their release names and namespaces are the same.
    operators = deployed.cluster.get(
        "deployments", "--all-namespaces", "-l", "app.kubernetes.io/name=checkout-operator"
    )["items"]
    found = sorted((d["metadata"]["namespace"], d["metadata"]["name"]) for d in operators)
    assert found == [(OPERATOR_NAMESPACE, OPERATOR_DEPLOYMENT)], (
        f"operators in the cluster: {found}; scripts/cluster.sh's OPERATOR_RELEASE and "
        "OPERATOR_NAMESPACE must be skaffold.yaml's operator release"
    )


def _ready(cluster: KindCluster, name: str, namespace: str) -> bool:
    checkout = cluster.get("checkout", name, "-n", namespace)
    status = checkout.get("status", {})
    conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
    return conditions.get("Ready") == "True"


def test_sample_checkout_is_ready_with_the_service_images_skaffold_built(
    deployed: Deployed,
) -> None:
    cluster = deployed.cluster
    name, namespace = SAMPLE["metadata"]["name"], SAMPLE["metadata"]["namespace"]
    began = time.monotonic()
    try:
        # The operator, restarted with new default images, rolls each service to them.
        for service in SERVICES:
            deployment, image = f"{name}-{service}", deployed.images[f"checkout/{service}"]
            cluster.wait_for(
                functools.partial(_rolled_out, cluster, namespace, deployment, image),
                timeout=READY_TIMEOUT_SECONDS,
                what=f"{namespace}/{deployment} rolled out with {image}",
            )
        cluster.wait_for(
            lambda: _ready(cluster, name, namespace),
            timeout=READY_TIMEOUT_SECONDS,
            what=f"Checkout {namespace}/{name} Ready",
        )
    except (AssertionError, KubectlError) as error:
        pytest.fail(f"{error}\n{_explain(deployed)}")
    record_figure(
        f"skaffold: Checkout {name} Ready on the skaffold-built images "
        f"{time.monotonic() - began:.0f} s after `skaffold run` returned"
    )


def test_rest_answers_through_the_ingress(deployed: Deployed) -> None:
    host = SAMPLE["spec"]["ingress"]["host"]
    url = f"http://127.0.0.1:{deployed.cluster.http_port}/api/v1/products?pageSize=1"
    last: Any = None
    deadline = time.monotonic() + 180
    with httpx.Client(headers={"Host": host}, timeout=10) as client:
        while time.monotonic() < deadline:
            try:
                last = client.get(url)
            except httpx.HTTPError as error:
                last = error
            else:
                if last.status_code == 200:
                    break
            time.sleep(2)
    assert isinstance(last, httpx.Response) and last.status_code == 200, (
        f"GET {url} (Host: {host}) through the ingress: {last!r}\n{_explain(deployed)}"
    )
    body = last.json()
    assert isinstance(body, dict) and "items" in body, body


def _run(command: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, f"{' '.join(command)}: {result.stderr.strip()}"
    return result.stdout
