"""The pinned helm and kubectl (scripts/ensure_helm.py) are the versions the project says they
are, and kubectl speaks the Kubernetes minor everything else is pinned to."""

from __future__ import annotations

import subprocess

from tests.charts.conftest import KUBERNETES_VERSION
from tests.infra.helm import ensure_helm_module


def _version(tool: str, *args: str) -> str:
    binary = ensure_helm_module.ensure_tool(tool, use_path=False)
    result = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip()


def test_pinned_helm_is_the_declared_version() -> None:
    assert _version("helm", "version", "--short").startswith(f"v{ensure_helm_module.HELM_VERSION}+")


def test_pinned_kubectl_is_the_declared_version_and_minor() -> None:
    output = _version("kubectl", "version", "--client")
    assert f"Client Version: v{ensure_helm_module.KUBECTL_VERSION}" in output.splitlines()
    kubectl_minor = ".".join(ensure_helm_module.KUBECTL_VERSION.split(".")[:2])
    assert kubectl_minor == ".".join(KUBERNETES_VERSION.split(".")[:2])
