"""The operator against the real API server: children rendered from the charts (the four
services' and the storefront's) and owned by the Checkout, Secrets made once, status from the
children, no writes when nothing changed."""

from __future__ import annotations

import base64
import json
from typing import Any

from checkout_operator.spec import decode_spec
from checkout_operator.values import Release, all_workload_values

from services.keys.keyring import parse_keyring
from tests.infra.helm import Helm
from tests.operator.cluster import (
    OWNER_LABEL,
    SERVICES,
    Cluster,
    sample_checkout,
    wait_until,
)
from tests.operator.conftest import RunningOperator

EXPECTED_KINDS_PER_SERVICE = {
    "ServiceAccount",
    "ConfigMap",
    "Service",
    "Deployment",
    "StatefulSet",
    "PodDisruptionBudget",
    "Ingress",
    "NetworkPolicy",
}


def secret_names(release: str = "shop") -> set[str]:
    return {
        f"{release}-jwt-keyring",
        f"{release}-internal-keyring",
        *(f"{release}-{service}-mongodb" for service in SERVICES),
        f"{release}-storefront-csrf",
    }


def rendered_children(
    charts: Helm, operator: RunningOperator, namespace: str, checkout: dict[str, Any]
) -> set[tuple[str, str]]:
    """(kind, name) of everything ``helm template`` gives for the Checkout's values."""
    config = operator.runtime.config
    values = all_workload_values(
        Release(
            checkout["metadata"]["name"],
            namespace,
            decode_spec(checkout["spec"]),
            default_images=config.default_images,
            cluster_domain=config.cluster_domain,
        )
    )
    return {
        (obj["kind"], obj["metadata"]["name"])
        for service, service_values in values.items()
        for obj in charts.template(
            service, service_values, release=checkout["metadata"]["name"], namespace=namespace
        )
    }


def test_create_makes_owned_children_with_the_spec_values(
    cluster: Cluster, namespace: str, operator: RunningOperator, charts: Helm
) -> None:
    spec = sample_checkout(
        services={
            "auth": {"replicas": 2, "image": {"repository": "r.example.com/auth", "tag": "1.2.3"}},
            "cart": {"resources": {"requests": {"cpu": "200m"}, "limits": {"memory": "1Gi"}}},
        },
        storefront={"replicas": 2, "resources": {"requests": {"cpu": "20m"}}},
        mongodb={
            "image": "mongo:7.0.14",
            "storage": {"size": "5Gi", "className": "fast"},
            "keepDataOnDelete": False,
        },
        ingress={
            "host": "shop.example.com",
            "className": "public",
            "tls": {"enabled": True, "secretName": "shop-tls"},
        },
    )
    checkout = cluster.create_checkout(namespace, spec)
    uid = checkout["metadata"]["uid"]

    wait_until(
        lambda: len(cluster.list("Deployment", namespace, f"{OWNER_LABEL}=shop")) == 5,
        what="five Deployments",
    )
    # Exactly what the charts render for these values, plus the seven Secrets the operator makes.
    expected = rendered_children(charts, operator, namespace, checkout) | {
        ("Secret", name) for name in secret_names()
    }
    wait_until(lambda: cluster.children(namespace) == expected, what="every child")
    children = cluster.children(namespace)
    assert EXPECTED_KINDS_PER_SERVICE | {"Secret"} <= {kind for kind, _ in children}
    for kind, name in children:
        obj = cluster.get(kind, namespace, name)
        assert obj is not None
        refs = obj["metadata"]["ownerReferences"]
        assert [(r["kind"], r["name"], r["uid"], r["controller"]) for r in refs] == [
            ("Checkout", "shop", uid, True)
        ], f"{kind}/{name}"

    auth = cluster.get("Deployment", namespace, "shop-auth")
    assert auth is not None
    assert auth["spec"]["replicas"] == 2
    assert auth["spec"]["template"]["spec"]["containers"][0]["image"] == "r.example.com/auth:1.2.3"
    volumes = {v["name"]: v for v in auth["spec"]["template"]["spec"]["volumes"]}
    assert volumes["jwt-keyring"]["secret"]["secretName"] == "shop-jwt-keyring"
    assert volumes["internal-keyring"]["secret"]["secretName"] == "shop-internal-keyring"

    product = cluster.get("Deployment", namespace, "shop-product")
    assert product is not None
    # No image in the spec: the operator's default for the service.
    assert (
        product["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.example.com/checkout/product:0.1.0"
    )
    cart = cluster.get("Deployment", namespace, "shop-cart")
    assert cart is not None
    resources = cart["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"]["cpu"] == "200m"
    assert resources["limits"]["memory"] == "1Gi"

    # Every service is wired to every other one.
    for service in SERVICES:
        config = cluster.get("ConfigMap", namespace, f"shop-{service}")
        assert config is not None
        for other in SERVICES:
            assert (
                config["data"][f"{other.upper()}_URL"]
                == f"http://shop-{other}.{namespace}.svc.cluster.local:80"
            )
        database = cluster.get("StatefulSet", namespace, f"shop-{service}-mongodb")
        assert database is not None
        claim = database["spec"]["volumeClaimTemplates"][0]["spec"]
        assert claim["resources"]["requests"]["storage"] == "5Gi"
        assert claim["storageClassName"] == "fast"
        # keepDataOnDelete: false is the operator's to carry out when the Checkout goes; the
        # StatefulSet alone, deleted by hand, keeps its claims.
        assert database["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
        assert database["spec"]["template"]["spec"]["containers"][0]["image"] == "mongo:7.0.14"

    ingress = cluster.get("Ingress", namespace, "shop-auth")
    assert ingress is not None
    assert ingress["spec"]["ingressClassName"] == "public"
    assert ingress["spec"]["rules"][0]["host"] == "shop.example.com"
    assert ingress["spec"]["tls"] == [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]

    config = cluster.get("ConfigMap", namespace, "shop-auth")
    assert config is not None
    assert config["data"]["ACCESS_TOKEN_TTL_SECONDS"] == "900"

    # The storefront: the spec's replicas and resources, the operator's default image, the
    # operator's CSRF Secret, no keyring and no database; the shop at "/" of the same host.
    storefront = cluster.get("Deployment", namespace, "shop-storefront")
    assert storefront is not None
    assert storefront["spec"]["replicas"] == 2
    pod = storefront["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example.com/checkout/storefront:0.1.0"
    assert container["resources"]["requests"]["cpu"] == "20m"
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert container["env"] == [
        {
            "name": "CSRF_SECRET",
            "valueFrom": {"secretKeyRef": {"name": "shop-storefront-csrf", "key": "csrf-secret"}},
        }
    ]
    csrf = cluster.get("Secret", namespace, "shop-storefront-csrf")
    assert csrf is not None
    assert len(base64.b64decode(csrf["data"]["csrf-secret"])) == 48
    assert cluster.get("StatefulSet", namespace, "shop-storefront-mongodb") is None
    front = cluster.get("ConfigMap", namespace, "shop-storefront")
    assert front is not None
    assert front["data"]["COOKIE_SECURE"] == "true"  # the spec's Ingress has TLS
    assert front["data"]["PRODUCT_URL"] == f"http://shop-product.{namespace}.svc.cluster.local:80"
    shop = cluster.get("Ingress", namespace, "shop-storefront")
    assert shop is not None
    (rule,) = shop["spec"]["rules"]
    assert rule["host"] == "shop.example.com"
    assert [(p["path"], p["pathType"]) for p in rule["http"]["paths"]] == [("/", "Prefix")]
    # The operator's pods are let in to the services (key reports), not to the storefront.
    policy = cluster.get("NetworkPolicy", namespace, "shop-storefront")
    assert policy is not None
    assert len(policy["spec"]["ingress"]) == 1


def test_secrets_are_created_once_and_never_overwritten(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    mine = json.dumps({"active": "mine", "keys": [{"kid": "mine", "secret": "A" * 43}]})
    cluster.create(
        "Secret",
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "shop-jwt-keyring"},
            "data": {"keyring.json": base64.b64encode(mine.encode()).decode()},
        },
    )
    cluster.create_checkout(namespace, sample_checkout())
    wait_until(
        lambda: secret_names() <= cluster.names("Secret", namespace, f"{OWNER_LABEL}=shop"),
        what="the Checkout's Secrets",
    )
    jwt = cluster.get("Secret", namespace, "shop-jwt-keyring")
    assert jwt is not None
    assert base64.b64decode(jwt["data"]["keyring.json"]).decode() == mine  # adopted, not replaced

    internal = cluster.get("Secret", namespace, "shop-internal-keyring")
    assert internal is not None
    active, keys = parse_keyring(base64.b64decode(internal["data"]["keyring.json"]))
    assert active in keys
    assert len(keys[active].secret) >= 32

    # A keyring changed by someone else (later: rotation) stays as they left it.
    rotated = json.dumps({"active": "next", "keys": [{"kid": "next", "secret": "B" * 43}]})
    cluster.merge(
        "Secret",
        namespace,
        "shop-internal-keyring",
        {"data": {"keyring.json": base64.b64encode(rotated.encode()).decode()}},
    )
    runtime = operator.runtime
    ticks = runtime.reconciles
    wait_until(lambda: runtime.reconciles >= ticks + 3, what="three more reconciles")
    internal = cluster.get("Secret", namespace, "shop-internal-keyring")
    assert internal is not None
    assert base64.b64decode(internal["data"]["keyring.json"]).decode() == rotated
    passwords = {
        cluster.get("Secret", namespace, f"shop-{s}-mongodb")["data"]["mongodb-root-password"]  # type: ignore[index]
        for s in SERVICES
    }
    assert len(passwords) == 4  # one random password per database
