"""docs/kubernetes.md names the versions and names the repository actually pins and uses, so the
page cannot drift from what `make up`, skaffold and the images do."""

from __future__ import annotations

import re

import yaml

from tests.charts.conftest import repo_path
from tests.charts.dockerfiles import parse
from tests.infra.helm import ensure_helm_module

DOC = repo_path("docs", "kubernetes.md").read_text()


def _in_doc(text: str) -> None:
    assert text in DOC, f"docs/kubernetes.md does not mention {text!r}"


def test_pinned_versions_are_the_documented_ones() -> None:
    # Every version the offline path pins, and the Kubernetes and etcd it builds.
    for line in repo_path("k8s", "offline", "versions.env").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("=", 1)
            if name != "DEBIAN_SUITE":
                _in_doc(version)
    go_mod = repo_path("k8s", "offline", "kubernetes", "go.mod").read_text()
    for module in ("k8s.io/kubernetes", "go.etcd.io/etcd/server/v3"):
        found = re.search(rf"^\s*{re.escape(module)} v(\S+)$", go_mod, re.M)
        assert found
        _in_doc(found.group(1))
    kind = yaml.safe_load(repo_path("k8s", "kind-cluster.yaml").read_text())
    (node,) = kind["nodes"]
    _in_doc(node["image"].split("@")[0])
    _in_doc(parse(repo_path("services", "Dockerfile")).global_args["PYTHON_IMAGE"])
    uv = re.search(r"UV_VERSION := (\S+)", repo_path("Makefile").read_text())
    assert uv
    _in_doc(f"uv {uv.group(1)}")
    _in_doc(f"helm {ensure_helm_module.HELM_VERSION}")
    _in_doc(f"kubectl {ensure_helm_module.KUBECTL_VERSION}")
    values = yaml.safe_load(repo_path("charts", "auth", "values.yaml").read_text())
    _in_doc(f"mongo:{values['mongodb']['engines']['mongodb']['image']['tag']}")


def test_documented_names_are_the_real_ones() -> None:
    skaffold = yaml.safe_load(repo_path("skaffold.yaml").read_text())
    (release,) = skaffold["deploy"]["helm"]["releases"]
    _in_doc(f"`{release['setValues']['ingress.host']}`")
    _in_doc(f"namespace `{release['namespace']}`")
    for forward in skaffold["portForward"]:
        assert forward["localPort"] in range(8000, 8005)
    _in_doc("`localhost:8001`\u2013`8004`")
    _in_doc("the storefront to `localhost:8000`")
    (operator,) = [p for p in skaffold["profiles"] if p["name"] == "operator"]
    (forward,) = operator["portForward"]
    _in_doc(f"localhost:{forward['localPort']}")
    sample = yaml.safe_load(repo_path("k8s", "checkout-sample.yaml").read_text())
    _in_doc(f"`{sample['spec']['ingress']['host']}`")
    _in_doc(f"`{sample['metadata']['name']}` in namespace `{sample['metadata']['namespace']}`")
    for target in ("make up", "make down", "make cluster", "make url", "make e2e", "make dev"):
        _in_doc(target)
        if target != "make dev":
            name = target.split()[1]
            assert re.search(rf"^{name}:", repo_path("mk", "cluster.mk").read_text(), re.M)
