"""The Checkout CRD as the real API server applies it: defaults filled in, bad specs refused with
the field named, one copy of the CRD in the repository, and the sample accepted."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from checkout_operator.spec import decode_spec

from tests.operator.cluster import (
    CRD_FILE,
    MERGE,
    REPO_ROOT,
    Cluster,
    Refused,
    load_crds,
    sample_checkout,
)


def test_k8s_crd_is_the_chart_crd_not_a_copy() -> None:
    link = REPO_ROOT / "k8s" / "crd.yaml"
    assert link.is_symlink()
    assert link.resolve() == CRD_FILE.resolve()


def test_an_empty_spec_gets_every_default(cluster: Cluster, namespace: str) -> None:
    created = cluster.create_checkout(
        namespace,
        {
            "apiVersion": "checkout.platform.io/v1alpha1",
            "kind": "Checkout",
            "metadata": {"name": "bare"},
        },
    )
    spec = created["spec"]
    for service in ("auth", "product", "cart", "order"):
        assert spec["services"][service]["replicas"] == 1
        assert spec["services"][service]["autoscaling"] == {
            "enabled": False,
            "minReplicas": 2,
            "maxReplicas": 5,
            "targetCPUUtilizationPercentage": 75,
        }
    # The storefront is on, with the services' defaults; no image, no resources: the
    # operator's default image and the chart's requests.
    assert spec["storefront"] == {
        "enabled": True,
        "replicas": 1,
        "autoscaling": {
            "enabled": False,
            "minReplicas": 2,
            "maxReplicas": 5,
            "targetCPUUtilizationPercentage": 75,
        },
    }
    # No image: each engine's default lives in the charts (or the operator's settings).
    assert spec["mongodb"] == {
        "engine": "mongodb",
        "storage": {"size": "1Gi"},
        "keepDataOnDelete": True,
    }
    assert spec["ingress"] == {"enabled": True, "className": "traefik", "tls": {"enabled": False}}
    assert spec["networkPolicy"] == {
        "enabled": True,
        "ingressController": {
            "namespace": "traefik",
            "podLabels": {"app.kubernetes.io/name": "traefik"},
        },
    }
    assert spec["observability"] == {"tracing": {"sampleRatio": 1}}
    assert spec["secretRotation"] == {
        "intervalMinutes": 1440,
        "tokenLifetimeSeconds": 900,
        "propagationDelaySeconds": 90,
    }
    # What the API server filled in is what the operator assumes of a spec without it.
    assert decode_spec(spec) == decode_spec({})


def test_the_sample_is_accepted(cluster: Cluster, namespace: str, kube: httpx.Client) -> None:
    response = kube.post(
        cluster.path("Checkout", namespace),
        json=sample_checkout("demo"),
        params={"dryRun": "All", "fieldValidation": "Strict"},
    )
    assert response.status_code == 201, response.text


def with_spec(path: str, value: Any, name: str = "bad") -> dict[str, Any]:
    """The sample with the value at a dotted spec path replaced."""
    document = sample_checkout(name)
    node = document["spec"]
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = copy.deepcopy(value)
    return document


BAD_SPECS = [
    ("services.auth.replicas", 0, "spec.services.auth.replicas"),
    ("services.cart.replicas", "two", "spec.services.cart.replicas"),
    (
        "services.order.image",
        {"repository": "shop/order", "tag": "latest"},
        "spec.services.order.image.tag",
    ),
    (
        "services.product.image",
        {"repository": "Shop/Product"},
        "spec.services.product.image.repository",
    ),
    (
        "services.cart.autoscaling",
        {"enabled": True, "minReplicas": 6, "maxReplicas": 3},
        "spec.services.cart.autoscaling.minReplicas",
    ),
    (
        "services.auth.resources",
        {"requests": {"cpu": "lots"}},
        "spec.services.auth.resources.requests.cpu",
    ),
    ("storefront.enabled", "yes", "spec.storefront.enabled"),
    ("storefront.replicas", 0, "spec.storefront.replicas"),
    ("storefront.replicas", 21, "spec.storefront.replicas"),
    (
        "storefront.image",
        {"repository": "shop/storefront", "tag": "latest"},
        "spec.storefront.image.tag",
    ),
    ("storefront.image", {"repository": "Shop Front"}, "spec.storefront.image.repository"),
    (
        "storefront.resources",
        {"limits": {"memory": "plenty"}},
        "spec.storefront.resources.limits.memory",
    ),
    (
        "storefront.autoscaling",
        {"enabled": True, "minReplicas": 4, "maxReplicas": 2},
        "spec.storefront.autoscaling.minReplicas",
    ),
    ("mongodb.image", "mongo:latest", "spec.mongodb.image"),
    ("mongodb.image", "mongo", "spec.mongodb.image"),
    ("mongodb.engine", "postgresql", "spec.mongodb.engine"),
    ("mongodb.engine", "FerretDB", "spec.mongodb.engine"),
    ("mongodb", {"engine": "ferretdb", "image": "mongo:7.0.14"}, "spec.mongodb.image"),
    (
        "mongodb",
        {"engine": "ferretdb", "image": "mirror.example.com/mongo:7"},
        "spec.mongodb.image",
    ),
    ("mongodb", {"image": "ghcr.io/ferretdb/ferretdb:1.24.2"}, "spec.mongodb.image"),
    ("mongodb.image", "ghcr.io/ferretdb/ferretdb:latest", "spec.mongodb.image"),
    ("mongodb.storage.size", "big", "spec.mongodb.storage.size"),
    ("mongodb.storage.className", "Fast SSD", "spec.mongodb.storage.className"),
    ("mongodb.keepDataOnDelete", "yes", "spec.mongodb.keepDataOnDelete"),
    ("mongodb.resources.requests", {"cpu": "a lot"}, "spec.mongodb.resources.requests.cpu"),
    ("ingress.host", "Shop_Example", "spec.ingress.host"),
    (
        "ingress",
        {"enabled": True, "tls": {"enabled": True, "secretName": "tls"}},
        "spec.ingress.host",
    ),
    ("ingress.tls", {"enabled": True}, "spec.ingress.tls.secretName"),
    ("ingress.trustedProxies", ["10.244.0.0/16", "traefik"], "spec.ingress.trustedProxies"),
    ("ingress.trustedProxies", ["10.0.0.0/33"], "spec.ingress.trustedProxies"),
    ("networkPolicy.enabled", "yes", "spec.networkPolicy.enabled"),
    (
        "networkPolicy.ingressController.namespace",
        "Ingress NS",
        "spec.networkPolicy.ingressController.namespace",
    ),
    ("secretRotation.intervalMinutes", 1, "spec.secretRotation.intervalMinutes"),
    ("secretRotation.schedule", "every day", "spec.secretRotation.schedule"),
    ("secretRotation.tokenLifetimeSeconds", 10, "spec.secretRotation.tokenLifetimeSeconds"),
    (
        "observability.tracing.otlpEndpoint",
        "jaeger:4318",
        "spec.observability.tracing.otlpEndpoint",
    ),
    ("observability.tracing.sampleRatio", 2, "spec.observability.tracing.sampleRatio"),
]


@pytest.mark.parametrize(
    ("path", "value", "field"), BAD_SPECS, ids=[f"{p}={v}" for p, v, _ in BAD_SPECS]
)
def test_a_bad_spec_is_refused_naming_the_field(
    cluster: Cluster, namespace: str, path: str, value: Any, field: str
) -> None:
    refused = cluster.try_create("Checkout", namespace, with_spec(path, value))
    assert isinstance(refused, Refused) and refused.status == 422, refused
    body = refused.body
    assert field in body["message"], body["message"]
    assert any(cause.get("field") == field for cause in body["details"]["causes"]), body


GOOD_DATABASES = [
    {"engine": "ferretdb"},
    {"engine": "ferretdb", "resources": {"requests": {"cpu": "10m"}, "limits": {"memory": 1e9}}},
    {"engine": "ferretdb", "image": "ghcr.io/ferretdb/ferretdb:1.24.2"},
    {"engine": "ferretdb", "image": "mirror.example.com/db/ferretdb@sha256:" + "f" * 64},
    {"engine": "mongodb", "image": "mirror.example.com/mongo:7.0.14"},
    {"image": "mongo:7.0.14"},
]


@pytest.mark.parametrize("mongodb", GOOD_DATABASES, ids=[str(m) for m in GOOD_DATABASES])
def test_each_engine_is_accepted_with_its_own_image_or_none(
    cluster: Cluster, namespace: str, kube: httpx.Client, mongodb: dict[str, Any]
) -> None:
    response = kube.post(
        cluster.path("Checkout", namespace),
        json=with_spec("mongodb", mongodb, name="db"),
        params={"dryRun": "All", "fieldValidation": "Strict"},
    )
    assert response.status_code == 201, response.text
    stored = response.json()["spec"]["mongodb"]
    assert stored["engine"] == mongodb.get("engine", "mongodb")
    assert stored.get("image") == mongodb.get("image")


def test_a_checkout_from_before_engines_switches_only_without_the_old_image(
    cluster: Cluster, namespace: str, kube: httpx.Client
) -> None:
    """A Checkout made under the old CRD carries its default image, mongo:7.0.14: it stays valid,
    and asking it for FerretDB is refused until that image goes."""
    cluster.create_checkout(namespace, with_spec("mongodb", {"image": "mongo:7.0.14"}, "old"))
    path = cluster.path("Checkout", namespace, "old")
    response = kube.patch(path, json={"spec": {"mongodb": {"engine": "ferretdb"}}}, headers=MERGE)
    assert response.status_code == 422, response.text
    assert "which cannot run engine ferretdb" in response.json()["message"]
    switched = cluster.merge(
        "Checkout", namespace, "old", {"spec": {"mongodb": {"engine": "ferretdb", "image": None}}}
    )
    assert switched["spec"]["mongodb"]["engine"] == "ferretdb"
    assert "image" not in switched["spec"]["mongodb"]


@pytest.mark.parametrize(
    ("section", "field"),
    [
        (("services", "auth"), "replica"),
        # The storefront has no database or keyrings to configure.
        (("storefront",), "mongodb"),
        (("storefront",), "csrfSecret"),
    ],
)
def test_an_unknown_field_is_refused_under_strict_validation(
    cluster: Cluster, namespace: str, kube: httpx.Client, section: tuple[str, ...], field: str
) -> None:
    document = sample_checkout("typo")
    node = document["spec"]
    for key in section:
        node = node.setdefault(key, {})
    node[field] = 2  # kubectl validates strictly by default
    response = kube.post(
        cluster.path("Checkout", namespace), json=document, params={"fieldValidation": "Strict"}
    )
    assert response.status_code in (400, 422), response.text
    path = ".".join(("spec", *section, field))
    assert f'unknown field "{path}"' in response.json()["message"]


def test_the_storefront_takes_the_services_shapes(
    cluster: Cluster, namespace: str, kube: httpx.Client
) -> None:
    """Its replicas, image, resources and autoscaling are the per-service schemas, not copies."""
    schema = load_crds()[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]["properties"]
    service = spec["services"]["properties"]["auth"]["properties"]
    storefront = spec["storefront"]["properties"]
    assert set(storefront) == set(service) | {"enabled"}
    for key in service:
        assert storefront[key] == service[key], key
    good = with_spec(
        "storefront",
        {
            "enabled": False,
            "replicas": 3,
            "image": {"repository": "r.example.com/storefront", "tag": "1.2.3"},
            "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}},
        },
        name="front",
    )
    response = kube.post(
        cluster.path("Checkout", namespace),
        json=good,
        params={"dryRun": "All", "fieldValidation": "Strict"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["storefront"]["autoscaling"]["enabled"] is False


def test_a_long_name_is_refused(cluster: Cluster, namespace: str) -> None:
    refused = cluster.try_create("Checkout", namespace, sample_checkout("a" * 31))
    assert isinstance(refused, Refused) and refused.status == 422, refused
    assert "metadata.name must be at most 30 characters" in refused.body["message"]


def test_status_is_only_written_through_its_subresource(cluster: Cluster, namespace: str) -> None:
    cluster.create_checkout(namespace, sample_checkout())
    cluster.merge("Checkout", namespace, "shop", {"status": {"phase": "Ready"}})
    assert "status" not in cluster.checkout(namespace)
