"""skaffold.yaml agrees with the repository: artifacts build from files that exist, every built
image is the one a chart deploys, value overrides name real values, port-forwards name real
objects, the dev profile syncs .py files into the dev image, and the operator profile deploys the
operator chart and the sample Checkout. Profiles are applied the way skaffold applies them (JSON
patches, then the profile's own sections replace the base ones)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from tests.charts.conftest import repo_path
from tests.charts.dockerfiles import parse
from tests.infra.helm import SERVICES, Helm

ROOT = repo_path()
CONFIG: dict[str, Any] = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
PROFILES = {profile["name"]: profile for profile in CONFIG["profiles"]}
TEMPLATE_VALUE = re.compile(r"\{\{\s*\.(IMAGE_REPO|IMAGE_TAG|IMAGE_DIGEST)_(\w+)\s*\}\}")


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def apply_patch(document: dict[str, Any], patches: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 add/replace/remove: the operations skaffold profiles use."""
    result = copy.deepcopy(document)
    for patch in patches:
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
    return result


def effective(profile: str | None) -> dict[str, Any]:
    """The configuration `skaffold -p <profile>` runs with."""
    config = copy.deepcopy(CONFIG)
    config.pop("profiles")
    if profile is None:
        return config
    spec = PROFILES[profile]
    config = apply_patch(config, spec.get("patches", []))
    for section in ("build", "deploy", "manifests", "portForward"):
        if section in spec:
            config[section] = copy.deepcopy(spec[section])
    return config


def sanitized(image: str) -> str:
    return re.sub(r"[/.\-]", "_", image)


def values_has(chart: str, dotted: str) -> bool:
    """Whether `dotted` names a value of `chart` (an umbrella key may go into a subchart)."""
    keys = dotted.split(".")
    values = yaml.safe_load((ROOT / "charts" / chart / "values.yaml").read_text())
    if chart == "checkout" and keys[0] in SERVICES:
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
    if chart == "checkout" and keys[0] in SERVICES:
        values = yaml.safe_load((ROOT / "charts" / keys[0] / "values.yaml").read_text())
        keys = keys[1:]
    node: Any = values
    for key in keys:
        node = node[key]
    return str(node["repository"])


profile_params = pytest.mark.parametrize("profile", [None, *PROFILES], ids=["base", *PROFILES])


def test_schema_version_and_known_profiles() -> None:
    assert CONFIG["apiVersion"].startswith("skaffold/v4")
    assert CONFIG["kind"] == "Config"
    assert set(PROFILES) == {"dev", "operator"}


@profile_params
def test_artifacts_build_from_files_that_exist(profile: str | None) -> None:
    config = effective(profile)
    images = [a["image"] for a in config["build"]["artifacts"]]
    assert len(images) == len(set(images)), "an image is built twice"
    for artifact in config["build"]["artifacts"]:
        context = ROOT / artifact.get("context", ".")
        assert context.is_dir(), artifact
        dockerfile = context / artifact["docker"].get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{artifact['image']}: no {dockerfile}"
        target = artifact["docker"].get("target")
        if target:
            assert target in {s.name for s in parse(dockerfile).stages}, artifact
        for arg in artifact["docker"].get("buildArgs", {}):
            args = [
                rest.partition("=")[0]
                for s in parse(dockerfile).stages
                for k, rest in s.instructions
                if k == "ARG"
            ]
            assert arg in args, f"{artifact['image']}: build arg {arg} is not declared"


@profile_params
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


def test_base_deploys_the_umbrella_chart_with_every_service_image() -> None:
    config = effective(None)
    (release,) = config["deploy"]["helm"]["releases"]
    assert release["chartPath"] == "charts/checkout"
    assert sorted(a["image"] for a in config["build"]["artifacts"]) == sorted(
        f"checkout/{s}" for s in SERVICES
    )


def test_dev_profile_syncs_python_files_into_the_dev_image(helm: Helm) -> None:
    config = effective("dev")
    service_artifacts = [a for a in config["build"]["artifacts"] if "buildArgs" in a["docker"]]
    assert len(service_artifacts) == len(SERVICES)
    for artifact in service_artifacts:
        assert artifact["docker"]["target"] == "dev", artifact["image"]
        rules = artifact["sync"]["manual"]
        assert any(r["src"].endswith("*.py") and r["src"].startswith("services/") for r in rules)
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


def test_operator_profile_deploys_the_operator_chart_and_the_sample() -> None:
    config = effective("operator")
    images = {a["image"] for a in config["build"]["artifacts"]}
    assert images == {f"checkout/{s}" for s in SERVICES} | {"checkout/operator"}
    (release,) = config["deploy"]["helm"]["releases"]
    assert release["chartPath"] == "charts/checkout-operator"
    templates = release["setValueTemplates"]
    for service in SERVICES:
        assert f"IMAGE_REPO_checkout_{service}" in templates[f"serviceImages.{service}.repository"]
    (manifest,) = config["manifests"]["rawYaml"]
    assert manifest == "k8s/checkout-sample.yaml"
    sample = yaml.safe_load((ROOT / manifest).read_text())
    assert sample["apiVersion"] == "checkout.platform.io/v1alpha1"
    assert sample["kind"] == "Checkout"
    # kubectl runs after helm; its hook waits for the CRD that the operator chart installs.
    crd = yaml.safe_load(
        (ROOT / "charts/checkout-operator/crds/checkouts.checkout.platform.io.yaml").read_text()
    )
    hook = config["deploy"]["kubectl"]["hooks"]["before"][0]["host"]["command"]
    assert f"crd/{crd['metadata']['name']}" in hook
    assert crd["spec"]["group"] == sample["apiVersion"].split("/")[0]


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
