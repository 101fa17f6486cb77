"""Every chart lints strictly and renders, with its defaults and with several non-default value
sets, into objects that are valid for the pinned Kubernetes version."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.kit.settings import ServiceSettings, load_settings
from services.local.mongo_server import FERRETDB_VERSION
from tests.charts.conftest import CASE_IDS, CASES, KUBERNETES_VERSION, VALUE_SETS, repo_path
from tests.infra.helm import ALL_CHARTS, Helm


@pytest.mark.parametrize(("chart", "value_set"), CASES, ids=CASE_IDS)
def test_lint_strict(helm: Helm, chart: str, value_set: str) -> None:
    output = helm.lint(chart, VALUE_SETS[chart][value_set])
    assert "0 chart(s) failed" in output


@pytest.mark.parametrize("chart", ALL_CHARTS)
def test_chart_renders_its_notes(helm: Helm, chart: str) -> None:
    # NOTES.txt is rendered by install, not by template: a dry-run install renders it offline.
    result = helm.run(
        "install",
        "shop",
        str(helm.chart(chart)),
        "--namespace",
        "checkout",
        "--dry-run=client",
    )
    assert "NOTES:" in result.stdout
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "shop" in notes
    assert "<no value>" not in notes


@pytest.mark.parametrize(("chart", "value_set"), CASES, ids=CASE_IDS)
def test_objects_valid_for_pinned_kubernetes(
    rendered: dict[tuple[str, str], list[dict[str, Any]]], chart: str, value_set: str
) -> None:
    objects = rendered[(chart, value_set)]
    assert objects, "the chart rendered nothing"
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} is not a valid {KUBERNETES_VERSION} object: {exc}")


def test_crd_valid_for_pinned_kubernetes(helm: Helm) -> None:
    objects = helm.template("checkout-operator", include_crds=True)
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    assert [c["metadata"]["name"] for c in crds] == [
        "checkouts.checkout.platform.io",
        "checkoutbackups.checkout.platform.io",
    ]
    for crd in crds:
        kubernetes_validate.validate(crd, KUBERNETES_VERSION, strict=True)


def test_rendering_is_deterministic_apart_from_generated_secrets(helm: Helm) -> None:
    """Two renders differ only in Secrets generated on install (random by design, kept after)."""
    for chart in ("checkout", "auth"):
        first, second = helm.template(chart), helm.template(chart)
        assert len(first) == len(second)
        for a, b in zip(first, second, strict=True):
            if a != b:
                assert a["kind"] == "Secret", f"{a['kind']}/{a['metadata']['name']} changed"
                assert a["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_pinned_schema_version_is_shipped_by_kubernetes_validate() -> None:
    assert KUBERNETES_VERSION in kubernetes_validate.utils.all_versions()


def _minor(version: str) -> str:
    return ".".join(version.lstrip("v").split(".")[:2])


def test_one_kubernetes_minor_everywhere() -> None:
    kind = yaml.safe_load(repo_path("k8s", "kind-cluster.yaml").read_text())
    images = {node["image"] for node in kind["nodes"]}
    (image,) = images
    node_version = re.fullmatch(r"kindest/node:(v[\d.]+)@sha256:[a-f0-9]{64}", image)
    assert node_version, f"{image}: pin the kind node image by version and digest"
    go_mod = repo_path("k8s", "offline", "kubernetes", "go.mod").read_text()
    envtest = re.search(r"k8s\.io/kubernetes (v[\d.]+)", go_mod)
    assert envtest, "envtest pins no Kubernetes"
    minors = {
        "schemas": _minor(KUBERNETES_VERSION),
        "kind node": _minor(node_version.group(1)),
        "envtest": _minor(envtest.group(1)),
    }
    assert len(set(minors.values())) == 1, minors


def test_library_chart_lints_strict(helm: Helm) -> None:
    output = helm.run("lint", "--strict", str(helm.chart("checkout-lib"))).stdout
    assert "0 chart(s) failed" in output


def test_one_image_per_database_engine_everywhere() -> None:
    """The service charts default each engine to one image pinned to a patch version (FerretDB's
    the version the tests build and run); the CRD defaults no image, so the chosen engine's
    default stands, and its description and docs/operator.md name those defaults."""
    images: dict[str, set[str]] = {}
    for service in ("auth", "product", "cart", "order"):
        values = yaml.safe_load(repo_path("charts", service, "values.yaml").read_text())
        for engine, settings in values["mongodb"]["engines"].items():
            image = settings["image"]
            images.setdefault(engine, set()).add(f"{image['repository']}:{image['tag']}")
    (mongo,) = images.pop("mongodb")
    (ferretdb,) = images.pop("ferretdb")
    assert not images, images
    assert re.fullmatch(r"mongo:\d+\.\d+\.\d+", mongo), f"{mongo} is not pinned to a patch version"
    assert ferretdb == f"ghcr.io/ferretdb/ferretdb:{FERRETDB_VERSION.removeprefix('v')}"
    crd = next(  # the Checkout's; the file's second CRD is CheckoutBackup's
        yaml.safe_load_all(
            repo_path(
                "charts", "checkout-operator", "crds", "checkouts.checkout.platform.io.yaml"
            ).read_text()
        )
    )
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    crd_image = spec["properties"]["mongodb"]["properties"]["image"]
    assert "default" not in crd_image
    operator_doc = repo_path("docs", "operator.md").read_text()
    for image in (mongo, ferretdb):
        assert image in crd_image["description"], image
        assert image in operator_doc, image
    sample = yaml.safe_load(repo_path("k8s", "checkout-sample.yaml").read_text())
    assert "image" not in sample["spec"]["mongodb"]


def _trusted_proxies(objects: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """What each service's process (and the storefront's) makes of its rendered ConfigMap's
    TRUSTED_PROXIES."""
    found = {}
    for doc in objects:
        if doc["kind"] == "ConfigMap" and "SERVICE_NAME" in doc["data"]:
            data = doc["data"]
            if data["SERVICE_NAME"] == "storefront":
                if not repo_path("services", "storefront", "settings.py").is_file():
                    continue  # not in this tree yet
                from services.storefront.settings import StorefrontSettings

                environ = {**data, "CSRF_SECRET": "s" * 32}
                proxies = load_settings(StorefrontSettings, environ).trusted_proxies
            else:
                environ = {**data, "MONGO_URI": "mongodb://db:27017/"}
                proxies = load_settings(ServiceSettings, environ).trusted_proxies
            found[data["SERVICE_NAME"]] = proxies
    return found


def test_trusted_proxies_reach_every_service_as_a_setting(helm: Helm) -> None:
    assert set(_trusted_proxies(helm.template("checkout")).values()) == {()}
    shared = {"global": {"trustedProxies": ["10.244.0.0/16", "fd00::/8"]}}
    assert set(_trusted_proxies(helm.template("checkout", shared)).values()) == {
        ("10.244.0.0/16", "fd00::/8")
    }
    # A service's own list wins over the shared one.
    own = {**shared, "cart": {"trustedProxies": ["192.0.2.10"]}}
    rendered = _trusted_proxies(helm.template("checkout", own))
    assert rendered["cart"] == ("192.0.2.10",)
    assert rendered["order"] == ("10.244.0.0/16", "fd00::/8")
    if "storefront" in rendered:
        assert rendered["storefront"] == ("10.244.0.0/16", "fd00::/8")


@pytest.mark.parametrize("chart", ["auth", "storefront"])
def test_restoring_holds_the_deployment_at_zero_and_keeps_the_database(
    helm: Helm, chart: str
) -> None:
    """What the operator sets while it restores the databases: no pod of the service (so
    nothing writes), no autoscaler to bring one back, the database itself running."""
    values = {"restoring": True, "autoscaling": {"enabled": True}}
    objects = helm.template(chart, values)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 0
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    for statefulset in (o for o in objects if o["kind"] == "StatefulSet"):
        assert statefulset["spec"]["replicas"] == 1
    awake = helm.template(chart, {"autoscaling": {"enabled": True}})
    assert [o for o in awake if o["kind"] == "HorizontalPodAutoscaler"]


def _tracing_settings(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Each process's tracing settings, as it reads them from its rendered ConfigMap."""
    from services.storefront.settings import StorefrontSettings

    found: dict[str, Any] = {}
    for doc in objects:
        if doc["kind"] == "ConfigMap" and "SERVICE_NAME" in doc["data"]:
            data = doc["data"]
            if data["SERVICE_NAME"] == "storefront":
                settings: Any = load_settings(StorefrontSettings, {**data, "CSRF_SECRET": "s" * 32})
            else:
                settings = load_settings(ServiceSettings, {**data, "MONGO_URI": "mongodb://db/"})
            found[data["SERVICE_NAME"]] = (
                settings.otel_exporter_otlp_endpoint,
                settings.tracing_sample_ratio,
                settings.checkout_name,
                settings.pod_namespace,
            )
    return found


def _otlp_egress_ports(objects: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Per service NetworkPolicy: the ports of its egress rules that name no peer (the OTLP one)."""
    found: dict[str, list[int]] = {}
    for doc in objects:
        if (
            doc["kind"] == "NetworkPolicy"
            and doc["metadata"]["labels"].get("app.kubernetes.io/component") == "api"
        ):
            name = doc["metadata"]["labels"]["app.kubernetes.io/name"]
            found[name] = [
                port["port"]
                for rule in doc["spec"]["egress"]
                if "to" not in rule
                for port in rule["ports"]
            ]
    return found


def test_tracing_is_off_by_default_and_on_with_an_endpoint_for_every_process(helm: Helm) -> None:
    off = helm.template("checkout")
    assert set(_tracing_settings(off).values()) == {(None, 1.0, None, None)}
    assert set(map(tuple, _otlp_egress_ports(off).values())) == {()}

    shared = {
        "global": {"tracing": {"otlpEndpoint": "http://jaeger.obs:4318", "sampleRatio": 0.25}}
    }
    on = helm.template("checkout", shared)
    settings = _tracing_settings(on)
    assert set(settings) == {"auth", "product", "cart", "order", "storefront"}
    assert set(settings.values()) == {("http://jaeger.obs:4318", 0.25, "shop", "checkout")}
    # Each pod may reach the endpoint's port, and only that one more.
    assert set(map(tuple, _otlp_egress_ports(on).values())) == {(4318,)}
    for obj in on:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)

    # A chart's own endpoint wins; https without a port is 443.
    own = {**shared, "cart": {"tracing": {"otlpEndpoint": "https://otel.example.com"}}}
    rendered = helm.template("checkout", own)
    assert _tracing_settings(rendered)["cart"][:2] == ("https://otel.example.com", 0.25)
    assert _otlp_egress_ports(rendered)["cart"] == [443]
    assert _tracing_settings(rendered)["order"][0] == "http://jaeger.obs:4318"


@pytest.mark.parametrize("endpoint", ["jaeger:4318", "grpc://jaeger:4317", "http://j:port"])
def test_a_bad_otlp_endpoint_is_refused_by_the_schema(helm: Helm, endpoint: str) -> None:
    with pytest.raises(Exception, match="otlpEndpoint"):
        helm.template("cart", {"tracing": {"otlpEndpoint": endpoint}})
