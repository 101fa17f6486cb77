"""The platform on a kind cluster, for the end-to-end tests: made by `scripts/cluster.sh up` (the
same path as `make up`), reached through its ingress on the host.

The tests run only when asked (`make e2e` sets CHECKOUT_E2E=1) and only where Docker and kind
exist; anywhere else they are skipped, and the skip says which of the two is missing. A cluster
made here is deleted afterwards unless CHECKOUT_E2E_KEEP=1; one that already existed is kept.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = ROOT / "scripts" / "cluster.sh"
SAMPLE = ROOT / "k8s" / "checkout-sample.yaml"
CLUSTER = os.environ.get("CHECKOUT_CLUSTER", "checkout")
HTTP_PORT = int(os.environ.get("CHECKOUT_HTTP_PORT", "8080"))
UP_TIMEOUT_SECONDS = 40 * 60


def missing_prerequisites() -> list[str]:
    """What a kind cluster needs that this machine lacks (empty: nothing)."""
    missing = []
    docker = shutil.which("docker")
    if docker is None:
        missing.append("Docker (no docker command)")
    else:
        try:
            info = subprocess.run(
                [docker, "info"], capture_output=True, text=True, timeout=60, check=False
            )
            if info.returncode != 0:
                missing.append("a running Docker engine (docker info fails)")
        except subprocess.TimeoutExpired:
            missing.append("a Docker engine that answers (docker info hangs)")
    if shutil.which("kind") is None:
        missing.append("kind")
    return missing


@pytest.fixture(scope="session")
def e2e_enabled() -> None:
    missing = missing_prerequisites()
    if missing:
        pytest.skip(f"needs Docker and kind, missing here: {', '.join(missing)} (try make dev)")
    if os.environ.get("CHECKOUT_E2E") != "1":
        pytest.skip("builds images and runs a kind cluster: run it with make e2e")


def _cluster_exists() -> bool:
    clusters = subprocess.run(
        ["kind", "get", "clusters"], capture_output=True, text=True, timeout=60, check=True
    )
    return CLUSTER in clusters.stdout.split()


@dataclass(frozen=True)
class Platform:
    """The platform behind the kind ingress: requests go to 127.0.0.1 with the sample's host."""

    host: str
    port: int

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Host": self.host},
            timeout=30.0,
        )


@pytest.fixture(scope="session")
def platform(e2e_enabled: None) -> Iterator[Platform]:
    existed = _cluster_exists()
    began = time.monotonic()
    # Progress goes to stderr as it happens (make e2e runs pytest with -s); stdout is the URL.
    up = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "up"],
        cwd=ROOT,
        timeout=UP_TIMEOUT_SECONDS,
        check=False,
        stdout=subprocess.PIPE,
        text=True,
    )
    if up.returncode != 0:
        pytest.fail(f"scripts/cluster.sh up failed ({up.returncode}); its output is above")
    print(f"platform up in {time.monotonic() - began:.0f}s at {up.stdout.strip()}")
    sample = yaml.safe_load(SAMPLE.read_text())
    try:
        yield Platform(host=sample["spec"]["ingress"]["host"], port=HTTP_PORT)
    finally:
        if not existed and os.environ.get("CHECKOUT_E2E_KEEP") != "1":
            subprocess.run(["bash", str(CLUSTER_SCRIPT), "down"], cwd=ROOT, check=False)
