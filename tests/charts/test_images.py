"""The Dockerfiles, checked without Docker: multi-stage builds on one pinned slim Python, the
locked dependencies, a non-root user matching the charts, nothing to build with in the image that
runs, COPY sources that exist and are not ignored by .dockerignore, and entry points that import.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.charts.conftest import repo_path
from tests.charts.dockerfiles import final_instructions, ignored, parse
from tests.infra.helm import CHARTS_WITH_DEPENDENCIES, WORKLOADS

ROOT = repo_path()
SERVICE_DOCKERFILE = ROOT / "services" / "Dockerfile"
OPERATOR_DOCKERFILE = ROOT / "operator" / "Dockerfile"
DOCKERFILES = [SERVICE_DOCKERFILE, OPERATOR_DOCKERFILE]
PINNED_SLIM_PYTHON = re.compile(r"^python:(3\.\d+)\.\d+-slim(-[a-z]+)?(@sha256:[a-f0-9]{64})?$")
# Tools that build or fetch software; none belongs in the image that runs.
BUILD_TOOLS = re.compile(
    r"\b(apt-get|apt|apk|gcc|g\+\+|make|build-essential|pip3? install|uv (sync|pip)|curl|wget)\b"
)


def skaffold() -> dict[str, object]:
    return yaml.safe_load((ROOT / "skaffold.yaml").read_text())


def skaffold_service_args() -> list[str]:
    artifacts = skaffold()["build"]["artifacts"]  # type: ignore[index]
    return [a["docker"]["buildArgs"]["SERVICE"] for a in artifacts if "buildArgs" in a["docker"]]


def test_dockerignore_matcher_follows_docker_rules() -> None:
    assert ignored(".git/config")
    assert ignored("services/auth/__pycache__/app.cpython-311.pyc")
    assert ignored("charts/auth/charts/checkout-lib-0.1.0.tgz")
    assert not ignored("services/auth/app.py")
    assert not ignored("charts/checkout-lib/templates/_names.tpl")


@pytest.mark.parametrize("big", [".git", ".venv", ".tools", ".local", ".cache", "tests", "bench"])
def test_build_context_leaves_out_what_no_image_needs(big: str) -> None:
    assert ignored(big), f"{big}/ would be sent to every docker build"


# -- both Dockerfiles --

dockerfile_params = pytest.mark.parametrize(
    "path", DOCKERFILES, ids=[str(p.relative_to(ROOT)) for p in DOCKERFILES]
)


@dockerfile_params
def test_multi_stage_on_one_pinned_slim_python(path: Path) -> None:
    dockerfile = parse(path)
    assert len(dockerfile.stages) >= 2, "not a multi-stage build"
    names = {s.name for s in dockerfile.stages}
    external = {dockerfile.base_image(s) for s in dockerfile.stages if s.base not in names}
    assert len(external) == 1, f"stages start from different images: {external}"
    (base,) = external
    match = PINNED_SLIM_PYTHON.fullmatch(base)
    assert match, f"{base} is not a slim Python pinned to a patch version"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minor = int(match.group(1).split(".")[1])
    low = int(re.search(r">=\s*3\.(\d+)", requires).group(1))  # type: ignore[union-attr]
    high = int(re.search(r"<\s*3\.(\d+)", requires).group(1))  # type: ignore[union-attr]
    assert low <= minor < high, f"{base} is outside requires-python {requires}"


def test_services_and_operator_share_the_python_base() -> None:
    bases = {
        parse(p).base_image(s) for p in DOCKERFILES for s in parse(p).stages if ":" in s.base
    } | {parse(p).global_args.get("PYTHON_IMAGE") for p in DOCKERFILES}
    assert len(bases) == 1, bases


@dockerfile_params
def test_dependencies_come_from_the_lock(path: Path) -> None:
    dockerfile = parse(path)
    runs = [rest for s in dockerfile.stages for keyword, rest in s.instructions if keyword == "RUN"]
    syncs = [r for r in runs if "uv sync" in r]
    assert syncs, "no uv sync"
    for sync in syncs:
        assert "--locked" in sync and "--no-dev" in sync, sync
    copies = [
        rest for s in dockerfile.stages for keyword, rest in s.instructions if keyword == "COPY"
    ]
    assert any("uv.lock" in c.split() for c in copies), "uv.lock is not copied in"
    uv_pins = [r for r in runs if re.search(r"uv==", r)]
    makefile = (ROOT / "Makefile").read_text()
    pinned = re.search(r"UV_VERSION := (\S+)", makefile)
    assert pinned, "the Makefile pins no uv"
    args = " ".join(rest for s in dockerfile.stages for k, rest in s.instructions if k == "ARG")
    assert f"UV_VERSION={pinned.group(1)}" in args, "the image's uv is not the Makefile's"
    assert uv_pins


@dockerfile_params
def test_final_image_runs_as_the_charts_non_root_user(path: Path) -> None:
    dockerfile = parse(path)
    users = [rest for keyword, rest in final_instructions(dockerfile) if keyword == "USER"]
    assert users, "the final image has no USER: it would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, f"USER {users[-1]} must be a numeric non-root uid"
    chart = "checkout-operator" if path == OPERATOR_DOCKERFILE else "auth"
    values = yaml.safe_load((ROOT / "charts" / chart / "values.yaml").read_text())
    # The pod's runAsUser is the image's user, so file ownership inside the image holds.
    assert int(uid) == values["podSecurityContext"]["runAsUser"]
    assert gid and int(gid) == values["podSecurityContext"]["runAsGroup"]


@dockerfile_params
def test_final_image_has_no_build_tools(path: Path) -> None:
    dockerfile = parse(path)
    chain = dockerfile.chain(dockerfile.stages[-1])
    for stage in chain:
        for keyword, rest in stage.instructions:
            if keyword == "RUN":
                found = BUILD_TOOLS.search(rest)
                assert not found, f"stage {stage.name}: RUN {rest!r} uses {found.group(0)}"
            if keyword == "COPY" and "--from=" in rest:
                source = re.search(r"--from=(\S+)", rest).group(1)  # type: ignore[union-attr]
                copied = rest.split()[-2]
                assert not re.search(r"(^|/)(uv|pip|gcc)$", copied), rest
                assert source in {s.name for s in dockerfile.stages}, rest
    # pip, setuptools and wheel ship with the base image; the final image removes them.
    runs = " ".join(rest for k, rest in final_instructions(dockerfile) if k == "RUN")
    assert "pip uninstall" in runs and "pip" in runs and "setuptools" in runs


@dockerfile_params
def test_copy_sources_exist_and_reach_the_build_context(path: Path) -> None:
    dockerfile = parse(path)
    for stage in dockerfile.stages:
        for keyword, rest in stage.instructions:
            if keyword not in {"COPY", "ADD"} or "--from=" in rest:
                continue
            assert keyword == "COPY", f"ADD {rest}: use COPY"
            words = [w for w in rest.split() if not w.startswith("--")]
            for source in words[:-1]:
                target = ROOT / source
                assert target.exists(), f"COPY {source}: no such file in the repository"
                assert not ignored(source), f"COPY {source}: left out by .dockerignore"
                if target.is_dir():
                    files = [
                        f.relative_to(ROOT).as_posix()
                        for f in target.rglob("*.py")
                        if "__pycache__" not in f.parts
                    ] or [f.relative_to(ROOT).as_posix() for f in target.rglob("*") if f.is_file()]
                    assert files, f"COPY {source}: an empty folder"
                    left_out = [f for f in files if ignored(f)]
                    assert not left_out, f"COPY {source}: .dockerignore drops {left_out[:5]}"


# -- the service image --


def test_service_image_accepts_exactly_the_services_skaffold_builds() -> None:
    """The four services and the storefront, each its own image from services/Dockerfile."""
    text = SERVICE_DOCKERFILE.read_text()
    case = re.search(r'case "\$\{SERVICE\}" in ([a-z|]+)\)', text)
    assert case, "the Dockerfile does not check its SERVICE build arg"
    assert sorted(case.group(1).split("|")) == sorted(WORKLOADS)
    assert sorted(skaffold_service_args()) == sorted(WORKLOADS)


def test_service_image_runs_the_service_module_on_the_charts_port() -> None:
    dockerfile = parse(SERVICE_DOCKERFILE)
    runtime = final_instructions(dockerfile)
    (entrypoint,) = [rest for keyword, rest in runtime if keyword == "ENTRYPOINT"]
    assert 'python -m \\"services.${SERVICE}\\"' in entrypoint, entrypoint
    assert entrypoint.startswith("["), "shell-form ENTRYPOINT: python would not get the signals"
    exposed = [rest for keyword, rest in runtime if keyword == "EXPOSE"]
    values = yaml.safe_load((ROOT / "charts" / "auth" / "values.yaml").read_text())
    assert exposed == [str(values["containerPort"])]
    env = " ".join(rest for keyword, rest in runtime if keyword == "ENV")
    assert f"PORT={values['containerPort']}" in env


def test_dev_target_serves_the_sources_skaffold_syncs() -> None:
    dockerfile = parse(SERVICE_DOCKERFILE)
    dev = dockerfile.stage("dev")
    instructions = " ".join(f"{k} {rest}" for k, rest in dev.instructions)
    assert "COPY --chown=10001:10001 services /app/services" in instructions
    assert "PYTHONPATH=/app" in instructions
    assert "watchfiles" in instructions


def runtime_import_errors(extras: str, modules: list[str], **env: str) -> dict[str, str]:
    """Import `modules` in a fresh interpreter with only the image's dependencies importable
    (tests/charts/runtime_imports.py); the failures, by module."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "charts" / "runtime_imports.py"), extras, *modules],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    errors: dict[str, str] = json.loads(result.stdout)
    return errors


@pytest.fixture(scope="module")
def import_errors() -> dict[str, str]:
    """Every service's __main__ and the storefront's, in one interpreter (one start-up)."""
    present = [w for w in WORKLOADS if (ROOT / "services" / w / "__main__.py").is_file()]
    return runtime_import_errors("", [f"services.{w}.__main__" for w in present])


def test_dev_only_packages_are_not_importable_in_the_probe() -> None:
    errors = runtime_import_errors("", ["pytest", "kubernetes_validate", "kopf", "litestar"])
    assert set(errors) == {"pytest", "kubernetes_validate", "kopf"}, errors
    assert "not a runtime dependency" in errors["pytest"]
    assert runtime_import_errors("operator", ["kopf"]) == {}


@pytest.mark.parametrize("service", skaffold_service_args())
def test_service_entry_point_imports(service: str, import_errors: dict[str, str]) -> None:
    """`python -m services.<name>` in the image: its __main__ imports (without running it), with
    nothing but the runtime dependencies."""
    if not (ROOT / "services" / service / "__main__.py").is_file():
        pytest.skip(f"services/{service} is not in this tree yet")
    assert f"services.{service}.__main__" not in import_errors, import_errors


# -- the operator image --


def test_operator_image_carries_helm_and_the_charts() -> None:
    dockerfile = parse(OPERATOR_DOCKERFILE)
    runtime = final_instructions(dockerfile)
    copies = [rest for keyword, rest in runtime if keyword == "COPY"]
    assert any(c.endswith("/usr/local/bin/helm") for c in copies), copies
    assert any(c.split()[-1] == "/app/charts" for c in copies), copies
    env = " ".join(rest for keyword, rest in runtime if keyword == "ENV")
    assert "CHECKOUT_CHARTS_DIR=/app/charts" in env
    # The chart's Deployment points the operator at the same places.
    chart = (ROOT / "charts" / "checkout-operator" / "templates" / "deployment.yaml").read_text()
    assert "value: /app/charts" in chart and "value: /usr/local/bin/helm" in chart


def test_operator_image_builds_every_charts_dependencies_in_order() -> None:
    """Each chart the operator renders needs its charts/ built (the library), and the umbrella
    after the charts it bundles: a chart left out fails every render of it in the image."""
    runs = [
        rest for s in parse(OPERATOR_DOCKERFILE).stages for k, rest in s.instructions if k == "RUN"
    ]
    (loop,) = [r for r in runs if "dependency build" in r]
    listed = re.search(r"for chart in ([a-z -]+); do", loop)
    assert listed, loop
    with_dependencies = [
        chart.parent.name
        for chart in sorted((ROOT / "charts").glob("*/Chart.yaml"))
        if "file://" in chart.read_text()
    ]
    assert sorted(listed.group(1).split()) == sorted(with_dependencies)
    assert listed.group(1).split() == list(CHARTS_WITH_DEPENDENCIES)


def test_operator_entry_point_imports() -> None:
    dockerfile = parse(OPERATOR_DOCKERFILE)
    (entrypoint,) = [
        rest for keyword, rest in final_instructions(dockerfile) if keyword == "ENTRYPOINT"
    ]
    module = re.search(r'"-m", "([\w.]+)"', entrypoint)
    assert module, entrypoint
    package = ROOT / "operator" / module.group(1)
    if not package.is_dir():
        pytest.skip(f"operator/{module.group(1)} is not in this tree yet")
    # The image installs the project with its `operator` extra and puts operator/ on PYTHONPATH.
    errors = runtime_import_errors("operator", [module.group(1)], PYTHONPATH=str(ROOT / "operator"))
    assert not errors, errors
