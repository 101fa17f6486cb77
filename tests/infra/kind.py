"""A real kind cluster for the tests: one per test run, shared by every pytest-xdist worker.

The first worker that needs it runs ``scripts/cluster.sh cluster`` (the same path as
``make cluster``: on machines without a registry it builds every image here first, see
``k8s/offline``) under a file lock; the others wait on the lock and then find it. The cluster is
named ``checkout-test`` and maps its ingress to 127.0.0.1:18080/18443, so it never collides with a
``make up`` cluster, and its kubeconfig is a file of its own (the user's ``~/.kube/config`` is not
touched). The controller process deletes it when the run ends (``delete_if_created``), also after
a failed or interrupted run; ``CHECKOUT_KEEP_CLUSTER=1`` keeps it for the next run.

Where no Docker engine answers, `missing_prerequisites` says so and the tests skip with that
reason, except under ``CI=true``, where a skipped cluster test is a failure.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from services.local.mongo_server import cache_dir

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = ROOT / "scripts" / "cluster.sh"
OFFLINE_BUILD = ROOT / "k8s" / "offline" / "build.sh"
ENGINE_SCRIPT = ROOT / "k8s" / "offline" / "engine" / "engine.sh"
PRIVATE_DOCKER_HOST = "unix:///run/checkout-docker/docker.sock"

CLUSTER_NAME = os.environ.get("CHECKOUT_TEST_CLUSTER", "checkout-test")
HTTP_PORT = int(os.environ.get("CHECKOUT_TEST_HTTP_PORT", "18080"))
HTTPS_PORT = int(os.environ.get("CHECKOUT_TEST_HTTPS_PORT", "18443"))
# The cold path builds every image first (about 20 minutes on two cores); warm, a minute or two.
CREATE_TIMEOUT_SECONDS = 60 * 60
RUN_ID_VARIABLE = "CHECKOUT_TEST_RUN_ID"


def state_dir() -> Path:
    folder = cache_dir() / "kind-test"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _docker() -> str | None:
    return os.environ.get("CHECKOUT_DOCKER") or shutil.which("docker")


def engine_env() -> dict[str, str]:
    """The environment pointing docker and kind at the engine to use: the one DOCKER_HOST names
    (or the default socket), else the private engine when it runs."""
    env = dict(os.environ)
    docker = _docker()
    if docker is None:
        return env
    if _answers(docker, env):
        return env
    private = {**env, "DOCKER_HOST": PRIVATE_DOCKER_HOST, "DOCKER_BUILDKIT": "1"}
    if os.path.exists("/usr/bin/docker"):
        private["CHECKOUT_DOCKER"] = "/usr/bin/docker"
    if _answers(docker, private):
        return private
    return env


def _answers(docker: str, env: dict[str, str]) -> bool:
    try:
        result = subprocess.run(
            [docker, "info"], capture_output=True, timeout=30, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def missing_prerequisites() -> str | None:
    """Why no kind cluster can be made here, in one sentence; None when one can."""
    docker = _docker()
    if docker is None:
        return "no docker command (install Docker, or Debian's docker.io and run .ci/run)"
    if not _answers(docker, engine_env()):
        return (
            "no Docker engine answers (start one, or the private engine: "
            'eval "$(k8s/offline/engine/engine.sh start)")'
        )
    if shutil.which("kind") is None and shutil.which("go") is None:
        return "neither kind nor Go (to build kind) is installed"
    return None


def offline_names(env: dict[str, str]) -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(OFFLINE_BUILD), "names"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=60,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def kubectl_binary() -> str:
    """The pinned kubectl (the client matches the cluster's minor), fetched once and cached."""
    result = subprocess.run(
        ["python3", str(ROOT / "scripts" / "ensure_helm.py"), "--tool", "kubectl", "--no-path"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return result.stdout.strip().splitlines()[-1]


class KubectlError(RuntimeError):
    pass


@dataclass
class KindCluster:
    """A running kind cluster and the ways the tests talk to it."""

    name: str
    kubeconfig: Path
    http_port: int
    images: str  # "offline" or "upstream"
    env: dict[str, str]
    names: dict[str, str] = field(default_factory=dict)
    kubectl_path: str = ""

    @property
    def context(self) -> str:
        return f"kind-{self.name}"

    @property
    def pull_policy(self) -> str:
        """Offline, an image missing from the node is an error, never a pull from a registry."""
        return "Never" if self.images == "offline" else "IfNotPresent"

    @property
    def python_image(self) -> str:
        """An image with Python 3.11 in it, present in the node (for the tests' own pods)."""
        if self.images == "offline":
            return self.names["PYTHON_IMAGE"]
        return "docker.io/library/python:3.11.14-slim-bookworm"

    def kubectl(
        self, *args: str, input: str | None = None, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [self.kubectl_path, "--kubeconfig", str(self.kubeconfig), "--context"]
        command += [self.context, *args]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(
                f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: str | list[dict[str, Any]], namespace: str | None = None) -> None:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump_all(manifest)
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        self.kubectl(*args, input=text)

    def load_images(self, *images: str) -> None:
        self.run_script("load", *images, timeout=900)

    def run_script(self, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
        """``scripts/cluster.sh ARGS`` against this cluster; a failure raises with its output."""
        result = subprocess.run(
            ["bash", str(CLUSTER_SCRIPT), *args],
            env=self.script_env(),
            timeout=timeout,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"scripts/cluster.sh {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stderr[-6000:]}"
            )
        return result

    def script_env(self) -> dict[str, str]:
        return {
            **self.env,
            "CHECKOUT_CLUSTER": self.name,
            "CHECKOUT_HTTP_PORT": str(self.http_port),
            "CHECKOUT_HTTPS_PORT": str(HTTPS_PORT),
            "CHECKOUT_IMAGES": self.images,
            "KUBECONFIG": str(self.kubeconfig),
        }

    def wait_for(
        self, predicate: Callable[[], Any], *, timeout: float = 180, what: str = ""
    ) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
            except KubectlError as error:
                last = error
            else:
                if last:
                    return last
            time.sleep(1)
        raise AssertionError(f"not within {timeout:.0f}s: {what}; last: {last!r}")

    def describe(self, namespace: str) -> str:
        """Pods, events and logs of a namespace: printed when a cluster test fails."""
        parts = []
        for args in (
            ("get", "pods,svc,pvc,ingress", "-o", "wide", "-n", namespace),
            ("get", "events", "--sort-by=.lastTimestamp", "-n", namespace),
        ):
            parts.append(self.kubectl(*args, check=False).stdout)
        pods = self.kubectl("get", "pods", "-n", namespace, "-o", "name", check=False).stdout
        for pod in pods.split():
            logs = self.kubectl(
                "logs", pod, "-n", namespace, "--all-containers", "--tail=30", check=False
            )
            parts.append(f"--- {pod}\n{logs.stdout}{logs.stderr}")
        return "\n".join(parts)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_cluster() -> KindCluster:
    """The run's cluster: made (or found) under a machine-wide lock."""
    env = engine_env()
    images = "offline" if env.get("DOCKER_HOST") == PRIVATE_DOCKER_HOST else "upstream"
    images = os.environ.get("CHECKOUT_IMAGES", images)
    folder = state_dir()
    cluster = KindCluster(
        name=CLUSTER_NAME,
        kubeconfig=folder / f"{CLUSTER_NAME}.kubeconfig",
        http_port=HTTP_PORT,
        images=images,
        env=env,
    )
    with _locked(folder / f"{CLUSTER_NAME}.lock"):
        began = time.monotonic()
        # Idempotent: an existing cluster is checked and completed, not made again.
        result = cluster.run_script("cluster", timeout=CREATE_TIMEOUT_SECONDS)
        if images == "offline":
            cluster.names = offline_names(env)
            # The tests' own pods run this image; it is loaded, never pulled.
            cluster.load_images(cluster.python_image)
        marker = folder / f"{CLUSTER_NAME}.run"
        run_id = os.environ.get(RUN_ID_VARIABLE, "")
        if "creating kind cluster" in result.stderr:
            if run_id:
                marker.write_text(run_id)
            record_figure(
                f"kind cluster {CLUSTER_NAME}: images and cluster ready in "
                f"{time.monotonic() - began:.0f}s"
            )
    cluster.kubectl_path = kubectl_binary()
    return cluster


def record_figure(line: str) -> None:
    """Keep a measured figure for the end-of-run summary (tests/conftest.py prints it), since a
    pytest-xdist worker's own output is not shown for passing tests. Printed here as well."""
    print(line)
    run_id = os.environ.get(RUN_ID_VARIABLE, "local")
    with open(state_dir() / f"figures-{run_id}.txt", "a") as handle:
        handle.write(line + "\n")


def figures(run_id: str) -> list[str]:
    path = state_dir() / f"figures-{run_id}.txt"
    if not run_id or not path.exists():
        return []
    lines = path.read_text().splitlines()
    path.unlink()
    return lines


def delete_if_created(run_id: str) -> None:
    """Delete the test cluster when this run made it (called once, by the controller). A kept
    cluster keeps its marker: a later pytest of the same run (the same CHECKOUT_TEST_RUN_ID, as
    the Makefile's phases share) deletes it then; another run's id never matches it."""
    marker = state_dir() / f"{CLUSTER_NAME}.run"
    if not marker.exists() or marker.read_text() != run_id:
        return
    if os.environ.get("CHECKOUT_KEEP_CLUSTER") == "1":
        return
    marker.unlink()
    subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "down"],
        env={**engine_env(), "CHECKOUT_CLUSTER": CLUSTER_NAME},
        timeout=300,
        check=False,
        capture_output=True,
    )
