"""What of skaffold.yaml no test runs skaffold for: tests/e2e_skaffold runs `skaffold build` and
`skaffold run -p operator,offline` (`-p operator` with upstream images) on the kind cluster, which
checks the artifacts, the operator profile's release, the sample and the images deployed. Left
here: the base and dev profiles' releases (their value overrides name real values, the charts'
defaults are the images built, a pushed image's digest is kept), port-forwards (only `skaffold
dev` forwards), the dev profile's sync into the dev image, the CA bundle the offline profile hands
to every build, and that the docs name the profiles in the order that works. Profiles are applied
the way skaffold applies them, in the order named (the profile's own sections replace the base
ones, then its patches: RFC 6902, plus the `key=value` selector of skaffold's patch library)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from tests.charts.conftest import repo_path
from tests.charts.dockerfiles import parse
from tests.infra.helm import WORKLOADS, Helm

ROOT = repo_path()
CONFIG: dict[str, Any] = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
PROFILES = {profile["name"]: profile for profile in CONFIG["profiles"]}
TEMPLATE_VALUE = re.compile(r"\{\{\s*\.(IMAGE_REPO|IMAGE_TAG|IMAGE_DIGEST)_(\w+)\s*\}\}")


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def _expand_selectors(document: Any, path: str) -> list[str]:
    """The paths a pointer names. A `key=value` segment (skaffold's patch library,
    krishicks/yaml-patch) selects every element of the list there whose `key` is `value`; it is
    an error when none is, as it is for skaffold ("invalid path")."""
    paths: list[tuple[str, Any]] = [("", document)]
    for segment in _pointer(path):
        if "=" not in segment:
            paths = [(f"{prefix}/{segment}", _child(node, segment)) for prefix, node in paths]
            continue
        key, _, value = segment.partition("=")
        selected = [
            (f"{prefix}/{index}", element)
            for prefix, node in paths
            if isinstance(node, list)
            for index, element in enumerate(node)
            if isinstance(element, dict) and element.get(key) == value
        ]
        assert selected, f"invalid path: {path} (no element with {key}={value})"
        paths = selected
    return [prefix for prefix, _ in paths]


def _child(node: Any, key: str) -> Any:
    if isinstance(node, list):
        return node[int(key)] if key.isdigit() and int(key) < len(node) else None
    return node.get(key) if isinstance(node, dict) else None


def apply_patch(document: dict[str, Any], patches: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 add/replace/remove: the operations skaffold profiles use."""
    result = copy.deepcopy(document)
    for patch in patches:
        for path in _expand_selectors(result, patch["path"]):
            _apply_one(result, {**patch, "path": path})
    return result


def _apply_one(result: dict[str, Any], patch: dict[str, Any]) -> None:
    *parents, last = _pointer(patch["path"])
    node: Any = result
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    op = patch["op"]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(index, copy.deepcopy(patch["value"]))
        elif op == "replace":
            node[index] = copy.deepcopy(patch["value"])
        else:
            assert op == "remove", op
            del node[index]
    elif op in ("add", "replace"):
        assert op == "add" or last in node, f"replace of missing {patch['path']}"
        node[last] = copy.deepcopy(patch["value"])
    else:
        assert op == "remove", op
        del node[last]


def effective(profile: str | None) -> dict[str, Any]:
    """The configuration `skaffold -p <profile>` runs with; `profile` may name several, comma
    separated, applied in that order as skaffold does."""
    config = copy.deepcopy(CONFIG)
    config.pop("profiles")
    if profile is None:
        return config
    for name in profile.split(","):
        spec = PROFILES[name]
        for section in ("build", "deploy", "manifests", "portForward"):
            if section in spec:
                config[section] = copy.deepcopy(spec[section])
        config = apply_patch(config, spec.get("patches", []))
    return config


def sanitized(image: str) -> str:
    return re.sub(r"[/.\-]", "_", image)


def values_has(chart: str, dotted: str) -> bool:
    """Whether `dotted` names a value of `chart` (an umbrella key may go into a subchart)."""
    keys = dotted.split(".")
    values = yaml.safe_load((ROOT / "charts" / chart / "values.yaml").read_text())
    if chart == "checkout" and keys[0] in WORKLOADS:
        values = yaml.safe_load((ROOT / "charts" / keys[0] / "values.yaml").read_text())
        keys = keys[1:]
    node: Any = values
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def image_value(chart: str, prefix: str) -> str:
    """The default repository a chart's image value holds (prefix like `auth.image`)."""
    keys = prefix.split(".")
    values = yaml.safe_load((ROOT / "charts" / chart / "values.yaml").read_text())
    if chart == "checkout" and keys[0] in WORKLOADS:
        values = yaml.safe_load((ROOT / "charts" / keys[0] / "values.yaml").read_text())
        keys = keys[1:]
    node: Any = values
    for key in keys:
        node = node[key]
    return str(node["repository"])


# Every profile alone, and the combination the offline machines run (tests/e2e_skaffold).
OFFLINE_OPERATOR = "operator,offline"
profile_params = pytest.mark.parametrize(
    "profile", [None, *PROFILES, OFFLINE_OPERATOR], ids=["base", *PROFILES, OFFLINE_OPERATOR]
)


# The offline profile changes no deploy section. tests/e2e_skaffold deploys the operator profile's
# release, but neither a chart's default images (an install without skaffold) nor a pushed image's
# digest: those stay checked here.
@pytest.mark.parametrize("profile", [None, "dev", "operator"], ids=["base", "dev", "operator"])
def test_every_built_image_is_the_one_a_chart_deploys(profile: str | None) -> None:
    config = effective(profile)
    built = {sanitized(a["image"]): a["image"] for a in config["build"]["artifacts"]}
    deployed: set[str] = set()
    for release in config["deploy"]["helm"]["releases"]:
        chart = release["chartPath"].removeprefix("charts/")
        assert (ROOT / release["chartPath"] / "Chart.yaml").is_file(), release["chartPath"]
        for key, template in release.get("setValueTemplates", {}).items():
            assert values_has(chart, key), f"{chart} has no value {key}"
            for _, name in TEMPLATE_VALUE.findall(template):
                assert name in built, f"{key} refers to {name}, which no artifact builds"
                deployed.add(name)
            if key.endswith(".repository"):
                (name,) = {n for _, n in TEMPLATE_VALUE.findall(template)}
                # The chart's own default is this very image, so an install without skaffold
                # (make up, the operator) deploys the same repository.
                assert image_value(chart, key.removesuffix(".repository")) == built[name]
                tag = release["setValueTemplates"][key.removesuffix("repository") + "tag"]
                assert f"IMAGE_TAG_{name}" in tag and f"IMAGE_DIGEST_{name}" in tag, tag
        for key in release.get("setValues", {}):
            assert values_has(chart, key), f"{chart} has no value {key}"
    assert deployed == set(built), f"built but never deployed: {set(built) - deployed}"


@profile_params
def test_port_forwards_name_rendered_objects(helm: Helm, profile: str | None) -> None:
    config = effective(profile)
    releases = config["deploy"]["helm"]["releases"]
    rendered = {
        (release["namespace"], o["kind"].lower(), o["metadata"]["name"]): o
        for release in releases
        for o in helm.template(
            release["chartPath"].removeprefix("charts/"),
            release="{}".format(release["name"]),
            namespace=release["namespace"],
        )
    }
    local_ports = [f["localPort"] for f in config["portForward"]]
    assert len(local_ports) == len(set(local_ports))
    # kind publishes the ingress on 8080/8443 (k8s/kind-cluster.yaml): never forward there.
    kind = yaml.safe_load((ROOT / "k8s" / "kind-cluster.yaml").read_text())
    host_ports = {m["hostPort"] for n in kind["nodes"] for m in n.get("extraPortMappings", [])}
    assert not host_ports & set(local_ports)
    for forward in config["portForward"]:
        key = (forward["namespace"], forward["resourceType"], forward["resourceName"])
        assert key in rendered, f"port-forward to {key}, which no release renders"
        obj = rendered[key]
        if obj["kind"] == "Service":
            ports = [p["port"] for p in obj["spec"]["ports"]]
        else:
            ports = [
                p["containerPort"]
                for c in obj["spec"]["template"]["spec"]["containers"]
                for p in c.get("ports", [])
            ]
        assert forward["port"] in ports, f"{key} has no port {forward['port']}"


def test_dev_profile_syncs_python_files_into_the_dev_image(helm: Helm) -> None:
    config = effective("dev")
    service_artifacts = [a for a in config["build"]["artifacts"] if "buildArgs" in a["docker"]]
    assert len(service_artifacts) == len(WORKLOADS)
    for artifact in service_artifacts:
        assert artifact["docker"]["target"] == "dev", artifact["image"]
        rules = artifact["sync"]["manual"]
        assert any(r["src"].endswith("*.py") and r["src"].startswith("services/") for r in rules)
        if artifact["docker"]["buildArgs"]["SERVICE"] == "storefront":
            # Its templates and static files are read from the sources too.
            sources = {r["src"] for r in rules}
            assert {"services/storefront/templates/**", "services/storefront/static/**"} <= sources
        for rule in rules:
            # Relative paths are kept under dest: services/x.py lands in /app/services/x.py,
            # where the dev image has its sources and PYTHONPATH.
            assert rule["dest"] == "/app" and "strip" not in rule, rule
    # Syncing writes into the container; the profile's values must still pass the chart schema.
    (release,) = config["deploy"]["helm"]["releases"]
    values: dict[str, Any] = {}
    for dotted, value in release["setValues"].items():
        node = values
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    objects = helm.template("checkout", values)
    for deployment in [o for o in objects if o["kind"] == "Deployment"]:
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is False


def test_crd_has_one_source_of_truth() -> None:
    link = ROOT / "k8s" / "crd.yaml"
    assert link.is_symlink(), "k8s/crd.yaml must be a link to the operator chart's CRD"
    assert link.resolve() == (
        ROOT / "charts/checkout-operator/crds/checkouts.checkout.platform.io.yaml"
    )


def _expand(template: str, pushed: bool) -> str:
    """What skaffold puts in a setValueTemplates value: a pushed image has a digest; one only
    loaded into kind has none, and skaffold drops the then-dangling "@"."""
    digest = "sha256:" + "c" * 64 if pushed else ""

    def value(match: re.Match[str]) -> str:
        kind, name = match.groups()
        if kind == "IMAGE_REPO":
            return "localhost:5000/" + name.replace("checkout_", "checkout/")
        return "v1-abc1234" if kind == "IMAGE_TAG" else digest

    return TEMPLATE_VALUE.sub(value, template).removesuffix("@")


@pytest.mark.parametrize("pushed", [True, False], ids=["pushed", "loaded-into-kind"])
@pytest.mark.parametrize("profile", [None, "operator"], ids=["base", "operator"])
def test_injected_image_references_render_as_pinned_images(
    helm: Helm, profile: str | None, pushed: bool
) -> None:
    (release,) = effective(profile)["deploy"]["helm"]["releases"]
    values: dict[str, Any] = {}
    for dotted, template in release["setValueTemplates"].items():
        node = values
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = _expand(template, pushed)
    objects = helm.template(release["chartPath"].removeprefix("charts/"), values)
    suffix = "v1-abc1234@sha256:" + "c" * 64 if pushed else "v1-abc1234"
    images = [
        c["image"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet")
        for c in o["spec"]["template"]["spec"]["containers"]
        if not c["image"].startswith("mongo:")
    ]
    if profile == "operator":
        (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
        env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        images += [e["value"] for e in env if e["name"].startswith("CHECKOUT_DEFAULT_IMAGE_")]
    built = {f"localhost:5000/{a['image']}" for a in effective(profile)["build"]["artifacts"]}
    assert images and all(image.endswith(":" + suffix) for image in images), images
    assert {image[: -len(suffix) - 1] for image in images} == built


@pytest.mark.parametrize("profile", [OFFLINE_OPERATOR, "dev,operator,offline"])
def test_offline_profile_hands_every_artifact_the_ca_bundle(profile: str) -> None:
    # As scripts/cluster.sh's docker_build does. A build without it still passes where no extra
    # certificate authority is needed (the secret mount is optional), so no skaffold run shows it.
    artifacts = effective(profile)["build"]["artifacts"]
    for artifact in artifacts:
        docker = artifact["docker"]
        (secret,) = docker["secrets"]
        assert secret["src"].startswith("/"), secret
        dockerfile = (ROOT / docker["dockerfile"]).read_text()
        assert f"--mount=type=secret,id={secret['id']}" in dockerfile, artifact["image"]
    # The dev profile's targets survive the offline patches (no test runs skaffold dev).
    if profile.startswith("dev"):
        assert all(a["docker"].get("target") == "dev" for a in artifacts[: len(WORKLOADS)])


def test_operator_artifact_names_the_dockerfiles_default_python_image() -> None:
    # Named so the offline profile has build args to patch; it must not change the default build.
    (operator,) = [
        a for a in effective("operator")["build"]["artifacts"] if "operator" in a["image"]
    ]
    dockerfile = parse(ROOT / operator["docker"]["dockerfile"])
    assert operator["docker"]["buildArgs"] == {
        "PYTHON_IMAGE": dockerfile.global_args["PYTHON_IMAGE"]
    }


def test_offline_goes_after_the_profiles_that_add_artifacts() -> None:
    # Named first, it patches only the artifacts there at that point: the operator's would then be
    # built from the upstream Python image. The comment and the docs say to name it last.
    operator = effective("offline,operator")["build"]["artifacts"]
    assert "network" not in operator[-1]["docker"]
    assert "`skaffold run -p operator,offline`" in (ROOT / "skaffold.yaml").read_text()
    assert "skaffold run -p operator,offline" in (ROOT / "docs" / "kubernetes.md").read_text()


def test_selector_patches_fail_where_nothing_matches() -> None:
    with pytest.raises(AssertionError, match="invalid path"):
        apply_patch({"a": [{"k": "x"}]}, [{"op": "add", "path": "/a/k=y/v", "value": 1}])
    patched = apply_patch(
        {"a": [{"k": "x"}, {"k": "y"}, {"k": "x"}]},
        [{"op": "add", "path": "/a/k=x/v", "value": 1}],
    )
    assert patched == {"a": [{"k": "x", "v": 1}, {"k": "y"}, {"k": "x", "v": 1}]}
