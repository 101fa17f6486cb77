"""What the Dockerfiles promise that running their images cannot show: multi-stage builds on one
pinned slim Python, the locked dependencies, a non-root user matching the charts (the pods' own
runAsUser hides the image's USER), nothing to build with in the image that runs, a build context
that leaves out what no image needs, and the `dev` target skaffold's dev profile syncs into (no
test builds it).

The rest is checked by building and running the images: scripts/cluster.sh builds both
Dockerfiles for the cluster tests (a missing or ignored COPY source fails the build), and
tests/e2e_kind runs every image there (each entry point, the service code and the operator's
charts and code of this tree, python as PID 1 of a service pod, helm rendering the charts).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.charts.conftest import repo_path
from tests.charts.dockerfiles import final_instructions, ignored, parse

ROOT = repo_path()
SERVICE_DOCKERFILE = ROOT / "services" / "Dockerfile"
OPERATOR_DOCKERFILE = ROOT / "operator" / "Dockerfile"
DOCKERFILES = [SERVICE_DOCKERFILE, OPERATOR_DOCKERFILE]
PINNED_SLIM_PYTHON = re.compile(r"^python:(3\.\d+)\.\d+-slim(-[a-z]+)?(@sha256:[a-f0-9]{64})?$")
# Tools that build or fetch software; none belongs in the image that runs.
BUILD_TOOLS = re.compile(
    r"\b(apt-get|apt|apk|gcc|g\+\+|make|build-essential|pip3? install|uv (sync|pip)|curl|wget)\b"
)


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


# -- the service image's dev target (skaffold dev -p dev; no test builds it) --


def test_dev_target_serves_the_sources_skaffold_syncs() -> None:
    dockerfile = parse(SERVICE_DOCKERFILE)
    dev = dockerfile.stage("dev")
    instructions = " ".join(f"{k} {rest}" for k, rest in dev.instructions)
    assert "COPY --chown=10001:10001 services /app/services" in instructions
    assert "PYTHONPATH=/app" in instructions
    assert "watchfiles" in instructions
