"""scripts/cluster.sh (`make up`, `make down`, `make cluster`) where the cluster tests cannot see
it. They run its offline path for real (`cluster`, `operator`, `load` and `down` on the test
cluster checkout-test, ports 18080/18443; tests/cluster, tests/e2e_kind); here: the defaults
`make up` uses, the upstream kind config (the same node as the offline one), what it says where
Docker or kind is missing (it points to `make dev`), and, with stand-in tools, the upstream path's
`up`, which needs registries this machine cannot reach.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.charts.conftest import repo_path

SCRIPT = repo_path("scripts", "cluster.sh")
TEXT = SCRIPT.read_text()


def _setting(name: str) -> str:
    found = re.search(rf'^{name}="\$\{{\w+:-([^}}]+)\}}"$', TEXT, re.MULTILINE) or re.search(
        rf'^{name}="([^"$]+)"$', TEXT, re.MULTILINE
    )
    assert found, f"cluster.sh sets no {name}"
    return found.group(1)


@pytest.mark.parametrize("config", ["k8s/kind-cluster.yaml", "k8s/offline/kind-cluster.yaml"])
def test_defaults_match_the_kind_configs(config: str) -> None:
    kind = yaml.safe_load(repo_path(*config.split("/")).read_text())
    assert _setting("CLUSTER") == kind["name"]
    (node,) = kind["nodes"]
    host_ports = {m["containerPort"]: m["hostPort"] for m in node["extraPortMappings"]}
    # cluster.sh rewrites exactly these lines to the ports it is given.
    assert _setting("HTTP_PORT") == str(host_ports[80]) == "8080"
    assert _setting("HTTPS_PORT") == str(host_ports[443]) == "8443"
    # Published on this machine only, never on every interface.
    assert all(m["listenAddress"] == "127.0.0.1" for m in node["extraPortMappings"])


def test_the_upstream_config_makes_the_node_the_offline_one_makes() -> None:
    # The offline config is the one the cluster tests run (its node image, its ingress-ready label
    # for Traefik, its port mappings); `make up` with upstream images uses the other.
    offline = yaml.safe_load(repo_path("k8s", "offline", "kind-cluster.yaml").read_text())
    online = yaml.safe_load(repo_path("k8s", "kind-cluster.yaml").read_text())
    assert online["nodes"][0]["labels"] == offline["nodes"][0]["labels"]
    assert online["nodes"][0]["extraPortMappings"] == offline["nodes"][0]["extraPortMappings"]


def _clean_env() -> dict[str, str]:
    # The stand-ins must be what runs, whatever engine this shell points at.
    drop = {"DOCKER_HOST", "CHECKOUT_DOCKER", "CHECKOUT_IMAGES", "KUBECONFIG"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run(command: str, path_dirs: list[Path]) -> subprocess.CompletedProcess[str]:
    env = {**_clean_env(), "PATH": os.pathsep.join(str(d) for d in path_dirs)}
    bash = shutil.which("bash")
    assert bash
    return subprocess.run(
        [bash, str(SCRIPT), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _bin_with(tmp_path: Path, tools: dict[str, str]) -> Path:
    """A folder with the basic tools the script needs and stand-ins for `tools`."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in (
        "grep",
        "sed",
        "dirname",
        "cat",
        "python3",
        "bash",
        "git",
        "date",
        "timeout",
        "mktemp",
        "rm",
        "mkdir",
        "sleep",
    ):
        # python3: this interpreter, not a version-manager shim that needs more of PATH.
        found = sys.executable if tool == "python3" else shutil.which(tool)
        if found:
            (folder / tool).symlink_to(found)
    for name, body in tools.items():
        stub = folder / name
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    return folder


@pytest.mark.parametrize("command", ["up", "down", "cluster"])
def test_without_docker_and_kind_it_says_so_and_points_to_make_dev(
    tmp_path: Path, command: str
) -> None:
    result = _run(command, [_bin_with(tmp_path, {})])
    assert result.returncode == 2, result.stderr
    assert "Docker (no docker command)" in result.stderr
    assert "kind" in result.stderr
    assert "make dev" in result.stderr


def test_a_docker_command_without_an_engine_is_not_enough(tmp_path: Path) -> None:
    stubs = {"docker": "exit 1", "kind": "exit 0"}
    result = _run("up", [_bin_with(tmp_path, stubs)])
    assert result.returncode == 2
    assert "a running Docker engine (docker info fails)" in result.stderr
    assert "kind (" not in result.stderr
    assert "make dev" in result.stderr


def test_down_without_a_cluster_is_a_no_op(tmp_path: Path) -> None:
    stubs = {"docker": "exit 0", "kind": 'if [ "$1 $2" = "get clusters" ]; then exit 0; fi; exit 9'}
    result = _run("down", [_bin_with(tmp_path, stubs)])
    assert result.returncode == 0, result.stderr
    assert "no kind cluster checkout" in result.stderr


def test_unknown_command_prints_the_usage(tmp_path: Path) -> None:
    result = _run("sideways", [_bin_with(tmp_path, {})])
    assert result.returncode == 64
    assert "scripts/cluster.sh up" in result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_is_clean() -> None:
    result = subprocess.run(
        ["shellcheck", str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout


# Stand-ins that log every call and answer like the real tools would on a fresh machine.
FAKE_TOOLS = {
    "docker": 'echo "docker $*" >> "$CALLS"',
    "kind": """echo "kind $*" >> "$CALLS"
if [ "$1 $2" = "get clusters" ]; then grep -q '^kind create' "$CALLS" && echo checkout; fi
exit 0""",
    "kubectl": """echo "kubectl $*" >> "$CALLS"
case "$*" in
  *"jsonpath={.metadata.name}"*) printf demo ;;
  *"jsonpath={.metadata.namespace}"*) printf default ;;
  *"jsonpath={.spec.ingress.host}"*) printf checkout.localhost ;;
  *"jsonpath={.spec.ingress.tls.enabled}"*) printf false ;;
  *"get deployment -o name"*) echo deployment.apps/demo-product ;;
  *"get checkout/"*) [ -n "$NEVER_READY" ] || printf True ;;
  *"get crd/"*) printf True ;;
esac
exit 0""",
    "helm": 'echo "helm $*" >> "$CALLS"',
    "curl": 'echo "curl $*" >> "$CALLS"; printf 200',
}


def _run_faked(
    tmp_path: Path, command: str, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    calls = tmp_path / "calls.log"
    calls.touch()
    folder = _bin_with(tmp_path, FAKE_TOOLS)
    for tool in ("seq", "date", "tr", "head", "tail", "awk", "paste", "tar", "touch", "mv"):
        if (found := shutil.which(tool)) and not (folder / tool).exists():
            (folder / tool).symlink_to(found)
    bash = shutil.which("bash")
    assert bash
    result = subprocess.run(
        [bash, str(SCRIPT), command, *args],
        env={**_clean_env(), "PATH": str(folder), "CALLS": str(calls), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, calls.read_text().splitlines()


def test_up_runs_every_step_in_order_against_the_kind_context(tmp_path: Path) -> None:
    admin_file = tmp_path / "admin.json"
    result, log = _run_faked(
        tmp_path, "up", CHECKOUT_IMAGE_TAG="t1", CHECKOUT_ADMIN_FILE=str(admin_file)
    )
    assert result.returncode == 0, result.stderr
    assert f"admin credentials: {admin_file}" in result.stderr
    assert '"email": "admin@checkout.localhost"' in admin_file.read_text()
    assert result.stdout.strip() == "http://checkout.localhost:8080"

    def first(prefix: str) -> int:
        matches = [i for i, line in enumerate(log) if line.startswith(prefix)]
        assert matches, f"never ran {prefix!r}:\n" + "\n".join(log)
        return matches[0]

    steps = [
        "kind create cluster --name checkout --config",
        "kubectl --context kind-checkout -n kube-system rollout status deployment/coredns",
        "kubectl --context kind-checkout apply -f "
        + str(repo_path("k8s", "ingress", "traefik.yaml")),
        "docker build ",
        "kind load docker-image --name checkout checkout/auth:t1 checkout/product:t1 "
        "checkout/cart:t1 checkout/order:t1 checkout/storefront:t1 checkout/operator:t1",
        "kubectl --context kind-checkout apply --server-side --force-conflicts -f",
        "helm --kube-context kind-checkout upgrade --install checkout-operator",
        "kubectl --context kind-checkout apply -f " + str(repo_path("k8s", "checkout-sample.yaml")),
        "kubectl --context kind-checkout -n default get checkout/demo -o jsonpath="
        '{.status.conditions[?(@.type=="Ready")].status}',
        "kubectl --context kind-checkout -n default exec deployment.apps/demo-product -- "
        "python -m services.product load-catalogue",
        "kubectl --context kind-checkout -n default exec -i deployment/demo-auth -- "
        "python -m services.auth create-admin --email admin@checkout.localhost",
        "curl ",
    ]
    positions = [first(step) for step in steps]
    assert positions == sorted(positions), "\n".join(log)
    builds = [line for line in log if line.startswith("docker build")]
    assert len(builds) == 6
    for service in ("auth", "product", "cart", "order", "storefront"):
        assert any(f"SERVICE={service} --tag checkout/{service}:t1" in b for b in builds)
    (install,) = [line for line in log if "upgrade --install checkout-operator" in line]
    assert "--set image.repository=checkout/operator --set-string image.tag=t1" in install
    assert "--set-string serviceImages.cart.tag=t1" in install
    assert "--set serviceImages.storefront.repository=checkout/storefront" in install
    # Nothing touched a context other than the kind one.
    for line in log:
        if line.startswith("kubectl "):
            assert line.startswith("kubectl --context kind-checkout "), line
        if line.startswith("helm "):
            assert line.startswith("helm --kube-context kind-checkout "), line


def test_up_explains_a_checkout_that_never_gets_ready(tmp_path: Path) -> None:
    result, log = _run_faked(
        tmp_path,
        "up",
        CHECKOUT_IMAGE_TAG="t1",
        NEVER_READY="1",
        CHECKOUT_READY_TIMEOUT="3s",
        CHECKOUT_ADMIN_FILE=str(tmp_path / "admin.json"),
    )
    assert result.returncode == 1
    assert "did not become Ready" in result.stderr
    assert "logs deploy/checkout-operator" in result.stderr
    assert any("get pods -l app.kubernetes.io/instance=demo" in line for line in log)
    assert not any("load-catalogue" in line for line in log)


def test_cluster_only_makes_the_cluster_and_the_ingress_controller(tmp_path: Path) -> None:
    result, log = _run_faked(tmp_path, "cluster")
    assert result.returncode == 0, result.stderr
    assert any(line.startswith("kind create cluster") for line in log)
    assert any("k8s/ingress/traefik.yaml" in line for line in log)
    assert not any(line.startswith(("docker build", "helm ")) for line in log)


def test_down_deletes_the_cluster(tmp_path: Path) -> None:
    (tmp_path / "calls.log").write_text("kind create cluster --name checkout\n")
    result, log = _run_faked(tmp_path, "down")
    assert result.returncode == 0, result.stderr
    assert log[-1] == "kind delete cluster --name checkout"


RELEASES = repo_path("RELEASES")


def _releases() -> list[tuple[str, str]]:
    lines = [line.split() for line in RELEASES.read_text().splitlines()]
    return [(fields[0], fields[1]) for fields in lines if fields and not fields[0].startswith("#")]


def test_every_release_names_a_full_commit_of_this_history() -> None:
    releases = _releases()
    assert releases, "RELEASES lists no release"
    for version, commit in releases:
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
        assert re.fullmatch(r"[0-9a-f]{40}", commit), commit
        found = subprocess.run(
            ["git", "-C", str(repo_path()), "cat-file", "-e", f"{commit}^{{commit}}"],
            capture_output=True,
            check=False,
        )
        assert found.returncode == 0, f"{version}: {commit} is not in this clone's history"
    chart = yaml.safe_load(repo_path("charts", "checkout-operator", "Chart.yaml").read_text())
    assert chart["version"] not in {v for v, _ in releases}, "this tree is newer than every release"


def test_release_installs_the_last_release_from_its_own_tree(tmp_path: Path) -> None:
    version, commit = _releases()[-1]
    cache = tmp_path / "cache"
    result, log = _run_faked(tmp_path, "release", CHECKOUT_CACHE_DIR=str(cache))
    assert result.returncode == 0, result.stderr
    tree = cache / "releases" / f"{version}-{commit[:12]}"
    assert (tree / "scripts" / "cluster.sh").is_file() and (tree / ".complete").is_file()
    released = subprocess.run(
        ["git", "-C", str(repo_path()), "show", f"{commit}:charts/checkout-operator/Chart.yaml"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert (tree / "charts" / "checkout-operator" / "Chart.yaml").read_text() == released
    builds = [line for line in log if line.startswith("docker build")]
    assert builds and all(f":{version} " in b for b in builds), builds
    (install,) = [line for line in log if "upgrade --install checkout-operator" in line]
    assert f"{tree}/charts/checkout-operator" in install
    assert f"--set-string image.tag={version}" in install
    # A second run takes the tree from the cache.
    (tmp_path / "again").mkdir()
    again, _ = _run_faked(tmp_path / "again", "release", version, CHECKOUT_CACHE_DIR=str(cache))
    assert again.returncode == 0, again.stderr
    assert "extracting release" not in again.stderr


def test_release_refuses_an_unknown_version_and_a_commit_missing_from_the_clone(
    tmp_path: Path,
) -> None:
    unknown, _ = _run_faked(tmp_path, "release", "9.9.9")
    assert unknown.returncode == 1
    known = " ".join(v for v, _ in _releases())
    assert f"release 9.9.9 is not in RELEASES (known: {known})" in unknown.stderr
    releases = tmp_path / "RELEASES"
    releases.write_text("# VERSION COMMIT DATE\n0.0.1 " + "0" * 40 + " 2026-01-01\n")
    (tmp_path / "x").mkdir()
    missing, log = _run_faked(tmp_path / "x", "release", CHECKOUT_RELEASES=str(releases))
    assert missing.returncode == 1
    assert (
        "release 0.0.1: commit 0000000000000000000000000000000000000000 is not in this clone"
        in (missing.stderr)
    )
    assert "git fetch --unshallow" in missing.stderr
    assert not any(line.startswith(("docker", "helm")) for line in log)
