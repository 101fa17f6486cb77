"""skaffold on the run's kind cluster, the way a developer runs it: `skaffold build`, then
`skaffold run -p operator` (with the `offline` profile after it where the cluster's images are
built on this machine, k8s/offline), against the cluster's own kubeconfig and kube-context.

skaffold v2.16.1 is built from its Go module (k8s/offline/go/skaffold/build.sh) and drives Helm 3,
built the same way (k8s/offline/go/helm3); kind, kubectl and the Docker client are the ones the
cluster was made with. They are put on a PATH of their own, so skaffold finds them by name as it
would on a developer's machine. skaffold's global config is a file of the test's, with the update
check, the survey and usage metrics off (nothing leaves the machine), and no prompt.

These tests upgrade the operator release and the sample Checkout the platform tests share
(tests/e2e_kind), so `make test` runs them alone, after the other cluster tests (Makefile).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra.kind import OFFLINE_BUILD, ROOT, KindCluster

SKAFFOLD_BUILD = ROOT / "k8s" / "offline" / "go" / "skaffold" / "build.sh"
HELM3_BUILD = ROOT / "k8s" / "offline" / "go" / "helm3" / "build.sh"
# A cold build of either binary takes many minutes on two cores; afterwards both are cached.
TOOL_BUILD_TIMEOUT_SECONDS = 60 * 60

GLOBAL_CONFIG = """\
global:
  update-check: false
  collect-metrics: false
  survey:
    disable-prompt: true
"""


@dataclass(frozen=True)
class Skaffold:
    """The skaffold binary and what it runs with against the kind cluster."""

    binary: Path
    cluster: KindCluster
    env: dict[str, str]
    work: Path  # global config, cache file, logs; bin/ holds the tools skaffold calls by name

    @property
    def profiles(self) -> str:
        """The profiles of `skaffold run -p operator` on this machine: `offline` after `operator`
        where the cluster's images are built here (no registry, no Docker bridge)."""
        return "operator,offline" if self.cluster.images == "offline" else "operator"

    def tool(self, name: str) -> str:
        """The docker, kind, kubectl or helm skaffold runs."""
        return str(self.work / "bin" / name)

    def command(self, *args: str) -> list[str]:
        return [
            str(self.binary),
            *args,
            "--kube-context",
            self.cluster.context,
            "--kubeconfig",
            str(self.cluster.kubeconfig),
            "--config",
            str(self.work / "global-config.yaml"),
            "--cache-file",
            str(self.work / "cache"),
        ]

    def run(self, *args: str, timeout: float, log: str) -> subprocess.CompletedProcess[str]:
        """Run skaffold in the repository; its output goes to `work/<log>` (and into the failure
        message when it fails)."""
        path = self.work / log
        with open(path, "w") as out:
            result = subprocess.run(
                self.command(*args),
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        if result.returncode != 0:
            pytest.fail(
                f"skaffold {' '.join(args)} failed ({result.returncode}):\n"
                f"{path.read_text()[-8000:]}"
            )
        return result


def _built(script: Path, name: str) -> Path:
    result = subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        timeout=TOOL_BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1]) / name


def _kind_binary(env: dict[str, str]) -> str:
    found = shutil.which("kind")
    if found:
        return found
    result = subprocess.run(
        ["bash", str(OFFLINE_BUILD), "kind"],
        capture_output=True,
        text=True,
        env=env,
        timeout=TOOL_BUILD_TIMEOUT_SECONDS,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def skaffold(kind_cluster: KindCluster, tmp_path_factory: pytest.TempPathFactory) -> Skaffold:
    binary = _built(SKAFFOLD_BUILD, "skaffold")
    helm = _built(HELM3_BUILD, "helm")
    if kind_cluster.images == "offline":
        # The sample's databases run FerretDB, which skaffold does not build: loaded into the node
        # as `scripts/cluster.sh operator` does (a no-op when the node has it).
        kind_cluster.load_images(kind_cluster.names["FERRETDB_IMAGE"])
    work = tmp_path_factory.mktemp("skaffold")
    (work / "global-config.yaml").write_text(GLOBAL_CONFIG)
    # The tools skaffold calls by name. The Docker client is the one the cluster's images are
    # built with (CHECKOUT_DOCKER: Debian's, with BuildKit, for the private engine).
    bin_dir = work / "bin"
    bin_dir.mkdir()
    env = kind_cluster.env
    docker = env.get("CHECKOUT_DOCKER") or shutil.which("docker") or "docker"
    for name, target in {
        "docker": docker,
        "kind": _kind_binary(env),
        "kubectl": kind_cluster.kubectl_path,
        "helm": str(helm),
    }.items():
        (bin_dir / name).symlink_to(target)
    skaffold_env = {
        **env,
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}",
        "KUBECONFIG": str(kind_cluster.kubeconfig),
        "DOCKER_BUILDKIT": "1",
        # No prompts and no update check (the global config says so too).
        "SKAFFOLD_INTERACTIVE": "false",
        "SKAFFOLD_UPDATE_CHECK": "false",
    }
    return Skaffold(binary=binary, cluster=kind_cluster, env=skaffold_env, work=work)
