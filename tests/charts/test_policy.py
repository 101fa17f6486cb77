"""Policy over every rendered object of every chart and value set: probes, sizing, security
context, service accounts, labels and selectors, pinned images, keyring mounts, service wiring,
and Secrets that an upgrade never re-rolls."""

from __future__ import annotations

import base64
import importlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest

from services.kit.settings import load_settings
from tests.charts.conftest import CASE_IDS, CASES, VALUE_SETS, objects_of
from tests.infra.helm import ROOT, SERVICES, WORKLOADS, Helm

Rendered = dict[tuple[str, str], list[dict[str, Any]]]

RELEASE = "shop"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
REQUIRED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)
# Labels that never change for the life of an object: the only ones a selector may use (a
# Deployment's selector is immutable, so a version or chart label there would break upgrades).
STABLE_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
}
KEYRING_MOUNTS = {
    "jwt-keyring": "/var/run/secrets/checkout/jwt",
    "internal-keyring": "/var/run/secrets/checkout/internal",
}

case_params = pytest.mark.parametrize(("chart", "value_set"), CASES, ids=CASE_IDS)


def _name(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def pod_templates(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod template) for every workload object."""
    for obj in objects:
        if obj["kind"] in WORKLOAD_KINDS:
            spec = obj["spec"]
            if obj["kind"] == "CronJob":
                spec = spec["jobTemplate"]["spec"]
            yield obj, spec["template"]


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def component(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["labels"]["app.kubernetes.io/component"])


# -- pods --


@case_params
def test_every_container_is_probed_on_the_service_endpoints(
    rendered: Rendered, chart: str, value_set: str
) -> None:
    workloads = list(pod_templates(rendered[(chart, value_set)]))
    assert workloads, "the chart renders no workload"
    for workload, template in workloads:
        for container in template["spec"]["containers"]:
            where = f"{_name(workload)} container {container['name']}"
            liveness = container.get("livenessProbe")
            assert liveness, f"{where} has no livenessProbe"
            if component(workload) == "api":
                ports = {p["name"] for p in container["ports"]}
                readiness = container.get("readinessProbe")
                assert liveness["httpGet"]["path"] == "/healthz", where
                assert readiness and readiness["httpGet"]["path"] == "/readyz", where
                assert liveness["httpGet"]["port"] in ports, where
                assert readiness["httpGet"]["port"] in ports, where
            elif component(workload) == "operator":
                # kopf answers /healthz on its liveness endpoint; it has nothing to be ready for.
                assert liveness["httpGet"]["path"] == "/healthz", where
            else:
                assert container.get("readinessProbe"), f"{where} has no readinessProbe"


@case_params
def test_every_container_has_requests_and_limits(
    rendered: Rendered, chart: str, value_set: str
) -> None:
    for workload, template in pod_templates(rendered[(chart, value_set)]):
        for container in containers(template):
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resources.get(kind, {}).get(resource), (
                        f"{_name(workload)} container {container['name']} has no {kind}.{resource}"
                    )


@case_params
def test_pods_run_non_root_read_only_without_capabilities(
    rendered: Rendered, chart: str, value_set: str
) -> None:
    for workload, template in pod_templates(rendered[(chart, value_set)]):
        pod_context = template["spec"].get("securityContext", {})
        assert template["spec"].get("hostNetwork") is not True, _name(workload)
        for container in containers(template):
            where = f"{_name(workload)} container {container['name']}"
            context = container.get("securityContext", {})
            non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
            assert non_root is True, f"{where}: runAsNonRoot is not true"
            user = context.get("runAsUser", pod_context.get("runAsUser"))
            assert user != 0, f"{where}: runs as uid 0"
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("privileged") is not True, where
            assert "ALL" in context.get("capabilities", {}).get("drop", []), where
            assert not context.get("capabilities", {}).get("add"), where
            seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", where


@case_params
def test_every_pod_has_its_own_service_account(
    rendered: Rendered, chart: str, value_set: str
) -> None:
    objects = rendered[(chart, value_set)]
    accounts = {o["metadata"]["name"]: o for o in objects_of(objects, "ServiceAccount")}
    used: dict[str, str] = {}
    for workload, template in pod_templates(objects):
        account = template["spec"].get("serviceAccountName", "default")
        assert account in accounts, f"{_name(workload)} runs as {account!r}, not rendered here"
        assert account not in used, f"{_name(workload)} shares {account!r} with {used[account]}"
        used[account] = _name(workload)
        # Only the operator talks to the API server; nothing else gets a token.
        wants_token = component(workload) == "operator"
        automount = template["spec"].get(
            "automountServiceAccountToken",
            accounts[account].get("automountServiceAccountToken", True),
        )
        assert automount is wants_token, f"{_name(workload)}: token mounted = {automount}"


@case_params
def test_images_are_pinned(rendered: Rendered, chart: str, value_set: str) -> None:
    for workload, template in pod_templates(rendered[(chart, value_set)]):
        for container in containers(template):
            image = container["image"]
            where = f"{_name(workload)} container {container['name']} image {image!r}"
            name, _, digest = image.partition("@")
            last = name.rsplit("/", 1)[-1]
            tag = last.partition(":")[2]
            assert tag or digest, f"{where} has neither tag nor digest"
            assert tag != "latest", f"{where} uses latest"
            if digest:
                assert digest.startswith("sha256:") and len(digest) == 71, where
    # The operator passes its default service images on to the charts it renders.
    for deployment in objects_of(rendered[(chart, value_set)], "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                if env["name"].startswith(
                    ("CHECKOUT_DEFAULT_IMAGE_", "CHECKOUT_DEFAULT_DATABASE_IMAGE_")
                ):
                    assert ":" in env["value"].rsplit("/", 1)[-1], env
                    assert not env["value"].endswith(":latest"), env


# -- labels and selectors --


@case_params
def test_every_object_carries_the_recommended_labels(
    rendered: Rendered, chart: str, value_set: str
) -> None:
    for obj in rendered[(chart, value_set)]:
        labels = obj["metadata"].get("labels", {})
        missing = [label for label in REQUIRED_LABELS if label not in labels]
        assert not missing, f"{_name(obj)} lacks {missing}"
        assert labels["app.kubernetes.io/part-of"] == "checkout-platform", _name(obj)
        assert labels["app.kubernetes.io/managed-by"] == "Helm", _name(obj)
        assert labels["app.kubernetes.io/instance"] == RELEASE, _name(obj)
    for workload, template in pod_templates(rendered[(chart, value_set)]):
        labels = template["metadata"]["labels"]
        missing = [label for label in REQUIRED_LABELS if label not in labels]
        assert not missing, f"pods of {_name(workload)} lack {missing}"


def _selectors(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, str]]]:
    spec = obj.get("spec", {})
    if obj["kind"] == "Service":
        if spec.get("selector"):
            yield "spec.selector", spec["selector"]
        return
    if "selector" in spec:
        yield "spec.selector.matchLabels", spec["selector"].get("matchLabels", {})
        assert not spec["selector"].get("matchExpressions"), _name(obj)
    template_spec = spec.get("template", {}).get("spec", {})
    for constraint in template_spec.get("topologySpreadConstraints", []):
        yield "topologySpreadConstraints", constraint["labelSelector"]["matchLabels"]


@case_params
def test_selectors_use_only_stable_labels_and_select_their_pods(
    rendered: Rendered, chart: str, value_set: str
) -> None:
    objects = rendered[(chart, value_set)]
    pod_label_sets = [t["metadata"]["labels"] for _, t in pod_templates(objects)]
    for obj in objects:
        for where, selector in _selectors(obj):
            assert selector, f"{_name(obj)} {where} is empty (it would select everything)"
            unstable = set(selector) - STABLE_LABELS
            assert not unstable, f"{_name(obj)} {where} selects on {sorted(unstable)}"
            matching = [
                labels
                for labels in pod_label_sets
                if all(labels.get(k) == v for k, v in selector.items())
            ]
            # Exactly one workload's pods: an api Service must never reach a database pod.
            assert len(matching) == 1, f"{_name(obj)} {where} matches {len(matching)} pod sets"


# -- wiring --


@case_params
def test_keyrings_are_mounted_as_directories_so_rotation_needs_no_restart(
    rendered: Rendered, chart: str, value_set: str
) -> None:
    objects = rendered[(chart, value_set)]
    for deployment in objects_of(objects, "Deployment"):
        if component(deployment) != "api":
            continue
        spec = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        (container,) = spec["containers"]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        config = _config_of(objects, deployment)
        if _workload(deployment) not in SERVICES:
            # The storefront holds no keys: nothing mounted, nothing to rotate in its pods.
            assert not [v for v in volumes.values() if "secret" in v], _name(deployment)
            assert set(mounts) == {"tmp"}, _name(deployment)
            assert not [k for k in config if "KEYRING" in k or k.startswith("JWT_")], config
            continue
        for volume, path in KEYRING_MOUNTS.items():
            assert "secret" in volumes[volume], _name(deployment)
            assert mounts[volume]["mountPath"] == path
            assert mounts[volume].get("readOnly") is True
            # A subPath mount is a copy that never sees the Secret change.
            assert "subPath" not in mounts[volume]
        assert config["JWT_KEYRING_FILE"] == f"{KEYRING_MOUNTS['jwt-keyring']}/keyring.json"
        assert config["INTERNAL_KEYRING_FILE"] == (
            f"{KEYRING_MOUNTS['internal-keyring']}/keyring.json"
        )
        # Keyrings are deliberately not part of the pod template's checksum.
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        assert not [a for a in annotations if "secret" in a or "keyring" in a], annotations


def _workload(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["labels"]["app.kubernetes.io/name"])


def _config_of(objects: list[dict[str, Any]], deployment: dict[str, Any]) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (source,) = container["envFrom"]
    name = source["configMapRef"]["name"]
    (config_map,) = [c for c in objects_of(objects, "ConfigMap") if c["metadata"]["name"] == name]
    return dict(config_map["data"])


def test_umbrella_wires_service_urls_over_cluster_dns(rendered: Rendered) -> None:
    for value_set in VALUE_SETS["checkout"]:
        objects = rendered[("checkout", value_set)]
        domain = "corp.local" if value_set == "no-ingress" else "cluster.local"
        services = {s["metadata"]["name"]: s for s in objects_of(objects, "Service")}
        for deployment in objects_of(objects, "Deployment"):
            config = _config_of(objects, deployment)
            for service in SERVICES:
                url = urlsplit(config[f"{service.upper()}_URL"])
                assert url.scheme == "http"
                assert url.hostname == f"{RELEASE}-{service}.checkout.svc.{domain}", url
                target = services[f"{RELEASE}-{service}"]
                assert url.port in [p["port"] for p in target["spec"]["ports"]]
            if _workload(deployment) not in SERVICES:
                # The storefront calls the four services and has no database of its own.
                assert not [k for k in config if k.startswith("MONGO_")], config
                continue
            assert config["MONGO_URI"].startswith("mongodb://"), config["MONGO_URI"]
            database = urlsplit(config["MONGO_URI"]).hostname or ""
            # The pod's stable DNS name behind the headless Service of its own StatefulSet.
            pod, headless = database.split(".")[:2]
            assert services[headless]["spec"]["clusterIP"] == "None"
            (statefulset,) = [
                s for s in objects_of(objects, "StatefulSet") if f"{s['metadata']['name']}-0" == pod
            ]
            assert statefulset["spec"]["serviceName"] == headless


# -- secrets --


@case_params
def test_workloads_reference_only_secrets_that_are_rendered_or_named_in_values(
    rendered: Rendered, chart: str, value_set: str
) -> None:
    objects = rendered[(chart, value_set)]
    known = {s["metadata"]["name"] for s in objects_of(objects, "Secret")}
    known |= _strings(VALUE_SETS[chart][value_set])
    if chart in SERVICES:
        # A service chart on its own mounts the keyrings that whoever installs it (the umbrella
        # chart or the operator) provides under these names; its NOTES.txt says so.
        known |= {f"{RELEASE}-jwt-keyring", f"{RELEASE}-internal-keyring"}
    for workload, template in pod_templates(objects):
        for secret in _secret_references(template):
            assert secret in known, (
                f"{_name(workload)} needs Secret {secret!r}, neither rendered nor named in values"
            )


def _strings(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(_strings(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_strings(v) for v in node)) if node else set()
    return {node} if isinstance(node, str) else set()


def _secret_references(template: dict[str, Any]) -> set[str]:
    names = {
        v["secret"]["secretName"] for v in template["spec"].get("volumes", []) if "secret" in v
    }
    for container in containers(template):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
    return names


@case_params
def test_generated_secrets_are_kept_and_well_formed(
    rendered: Rendered, chart: str, value_set: str
) -> None:
    for secret in objects_of(rendered[(chart, value_set)], "Secret"):
        annotations = secret["metadata"].get("annotations", {})
        # Kept on uninstall, so a reinstall finds and reuses it.
        assert annotations.get("helm.sh/resource-policy") == "keep", _name(secret)
        data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        if "keyring.json" in data:
            ring = json.loads(data["keyring.json"])
            kids = [key["kid"] for key in ring["keys"]]
            assert ring["active"] in kids
            for key in ring["keys"]:
                assert len(base64.urlsafe_b64decode(key["secret"] + "==")) >= 32, key["kid"]
        elif "csrf-secret" in data:
            # The storefront's: the same on every replica, at least 32 characters.
            assert set(data) == {"csrf-secret"}
            assert len(data["csrf-secret"]) >= 32
        else:
            assert set(data) == {"mongodb-root-username", "mongodb-root-password"}
            assert len(data["mongodb-root-password"]) >= 32


@case_params
def test_an_upgrade_never_renders_secrets_with_new_values(
    helm: Helm, chart: str, value_set: str
) -> None:
    """On upgrade a generated Secret is rendered only from what `lookup` finds in the cluster;
    offline it finds nothing, so two upgrade renders must hold no Secret data that could differ
    (tests/charts/test_apiserver.py checks the same against a real API server)."""
    values = VALUE_SETS[chart][value_set]
    first = helm.template(chart, values, is_upgrade=True)
    second = helm.template(chart, values, is_upgrade=True)
    assert first == second, "two renders of the same upgrade differ"
    assert not objects_of(first, "Secret"), [s["metadata"]["name"] for s in first]


def test_existing_secrets_are_used_and_none_is_generated(rendered: Rendered) -> None:
    objects = rendered[("checkout", "existing-secrets")]
    assert not objects_of(objects, "Secret")
    wanted = {"shop-jwt", "shop-internal", "auth-db", "product-db", "cart-db", "order-db"}
    wanted |= {"shop-csrf"}  # the storefront's CSRF secret
    referenced = set().union(*(_secret_references(t) for _, t in pod_templates(objects)))
    assert referenced == wanted
    auth = rendered[("auth", "existing-secrets")]
    assert not objects_of(auth, "Secret")
    assert set().union(*(_secret_references(t) for _, t in pod_templates(auth))) == {
        "jwt-ring",
        "api-ring",
        "auth-db-root",
        "first-admin",
    }


@pytest.mark.parametrize("service", WORKLOADS)
def test_the_services_accept_the_settings_their_chart_gives_them(
    rendered: Rendered, service: str
) -> None:
    """Every variable the chart sets is one the service (or the storefront) reads, and its own
    settings loader accepts the lot (the check it makes at start-up, naming any bad variable)."""
    if not (ROOT / "services" / service / "settings.py").is_file():
        pytest.skip(f"services/{service} is not in this tree yet")
    module = importlib.import_module(f"services.{service}.settings")
    settings_class = getattr(module, f"{service.capitalize()}Settings")
    fields = {f.name.upper() for f in msgspec.structs.fields(settings_class)}
    for value_set in ("default", "operator-sample", "operator-ferretdb"):
        if value_set not in VALUE_SETS[service]:
            continue
        objects = rendered[(service, value_set)]
        (deployment,) = objects_of(objects, "Deployment")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        environ = _config_of(objects, deployment)
        for env in container["env"]:
            # Secret values are not rendered; any string (as long as a CSRF secret) stands in.
            environ[env["name"]] = env.get("value", "a-value-from-a-secret" * 3)
        unknown = sorted(set(environ) - fields)
        assert not unknown, f"{service} chart sets variables the service never reads: {unknown}"
        settings = load_settings(settings_class, environ)
        assert settings.port == container["ports"][0]["containerPort"]
