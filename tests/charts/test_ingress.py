"""The Ingress routes every public path, clean and seed, to the service that answers it, and
nothing else: matched with the Kubernetes `Prefix` rules (whole path elements, longest wins)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.charts.conftest import objects_of
from tests.charts.ingress_rules import route
from tests.infra.helm import Helm

Rendered = dict[tuple[str, str], list[dict[str, Any]]]

# Concrete requests a client makes, and the service that must answer each.
PUBLIC_REQUESTS = {
    "auth": [
        "/api/v1/auth/register",
        "/api/v1/auth/token",
        "/api/v1/auth/verify",
        "/api/v1/users/6650f0c2a1b2c3d4e5f60718",
        "/api/auth/register",
        "/api/auth/signin",
        "/api/auth/verify-token",
        "/api/user",
        "/api/user/login",
        "/api/user/6650f0c2a1b2c3d4e5f60718",
    ],
    "product": [
        "/api/v1/products",
        "/api/v1/products/6650f0c2a1b2c3d4e5f60718",
        "/api/get-product",
        "/api/get-product-one",
        "/api/get-product-one/6650f0c2a1b2c3d4e5f60718",
    ],
    "cart": [
        "/api/v1/cart",
        "/api/v1/cart/items",
        "/api/v1/cart/items/6650f0c2a1b2c3d4e5f60718",
        "/api/cart/add-to-cart",
        "/api/cart/get-cart/",
        "/api/cart/edit-quantity/eyJhbGciOiJIUzI1NiJ9",
        "/api/cart/delete-cart/6650f0c2a1b2c3d4e5f60718",
    ],
    "order": [
        "/api/v1/orders",
        "/api/v1/orders/6650f0c2a1b2c3d4e5f60718",
        "/api/order",
        "/api/order/6650f0c2a1b2c3d4e5f60718",
    ],
}
# Never reachable from outside: service-to-service APIs, probes, metrics, API docs.
PRIVATE_REQUESTS = [
    "/internal/v1/reservations",
    "/internal/v1/users/6650f0c2a1b2c3d4e5f60718",
    "/internal/v1/cart/by-user/6650f0c2a1b2c3d4e5f60718",
    "/healthz",
    "/readyz",
    "/metrics",
    "/schema",
    "/api/v1/productsx",
    "/api/userx",
    "/api",
    "/",
]


def _ingress(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (ingress,) = objects_of(objects, "Ingress")
    return ingress


@pytest.mark.parametrize("value_set", ["default", "tls", "replicas-and-images", "existing-secrets"])
def test_umbrella_routes_every_public_path_to_its_service(
    rendered: Rendered, value_set: str
) -> None:
    objects = rendered[("checkout", value_set)]
    ingress = _ingress(objects)
    host = ingress["spec"]["rules"][0].get("host")
    services = {s["metadata"]["name"]: s for s in objects_of(objects, "Service")}
    for service, paths in PUBLIC_REQUESTS.items():
        for path in paths:
            target = route(ingress, host, path)
            assert target is not None, f"{path} is not routed"
            name, port = target
            assert name == f"shop-{service}", f"{path} goes to {name}, not shop-{service}"
            assert port in [p["name"] for p in services[name]["spec"]["ports"]]
    for path in PRIVATE_REQUESTS:
        assert route(ingress, host, path) is None, f"{path} must not be reachable from outside"


def test_umbrella_ingress_takes_class_host_and_tls_from_values(rendered: Rendered) -> None:
    default = _ingress(rendered[("checkout", "default")])
    assert default["spec"]["ingressClassName"] == "traefik"
    assert "tls" not in default["spec"]
    assert "host" not in default["spec"]["rules"][0]

    tls = _ingress(rendered[("checkout", "tls")])
    assert tls["spec"]["ingressClassName"] == "public"
    assert tls["spec"]["tls"] == [{"hosts": ["shop.example.com"], "secretName": "shop-example-tls"}]
    assert [r["host"] for r in tls["spec"]["rules"]] == ["shop.example.com"]
    assert tls["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    # With a host, requests for another host are not served by these rules.
    assert route(tls, "other.example.com", "/api/v1/products") is None

    assert not objects_of(rendered[("checkout", "no-ingress")], "Ingress")


def test_a_service_chart_on_its_own_routes_only_its_own_paths(rendered: Rendered) -> None:
    """The operator installs the service charts one by one, each with its own Ingress."""
    objects = rendered[("auth", "operator-style")]
    ingress = _ingress(objects)
    assert ingress["spec"]["tls"] == [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]
    for service, paths in PUBLIC_REQUESTS.items():
        for path in paths:
            target = route(ingress, "shop.example.com", path)
            if service == "auth":
                assert target == ("shop-auth", "http"), path
            else:
                assert target is None, f"auth's Ingress claims {path}"
    for path in PRIVATE_REQUESTS:
        assert route(ingress, "shop.example.com", path) is None, path


@pytest.mark.parametrize("service", list(PUBLIC_REQUESTS))
def test_each_service_chart_ingress_covers_exactly_its_public_paths(
    helm: Helm, service: str
) -> None:
    objects = helm.template(service, {"ingress": {"enabled": True, "host": "shop.example.com"}})
    ingress = _ingress(objects)
    for owner, paths in PUBLIC_REQUESTS.items():
        for path in paths:
            expected = (f"shop-{service}", "http") if owner == service else None
            assert route(ingress, "shop.example.com", path) == expected, path
    for path in PRIVATE_REQUESTS:
        assert route(ingress, "shop.example.com", path) is None, path
