"""The Ingress routes every public path, clean and seed, to the service that answers it, every
other path to the storefront (its "/"), or, without the storefront, to nothing: matched with the
Kubernetes `Prefix` rules (whole path elements, longest wins). No private path of a service ever
reaches that service."""

from __future__ import annotations

from typing import Any

import pytest

from tests.charts.conftest import VALUE_SETS, objects_of
from tests.charts.ingress_rules import route
from tests.infra.helm import WORKLOADS, Helm

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
# The shop's pages: the storefront's, when it is installed.
STOREFRONT_REQUESTS = [
    "/",
    "/products/6650f0c2a1b2c3d4e5f60718",
    "/cart",
    "/checkout",
    "/orders",
    "/orders/6650f0c2a1b2c3d4e5f60718",
    "/signin",
    "/register",
    "/signout",
    "/account",
    "/static/app.css",
    "/pictures/6650f0c2a1b2c3d4e5f60718.jpg",
]
# Never reachable from outside through a service: service-to-service APIs, probes, metrics, API
# docs. With the storefront they reach the storefront (every path the API paths leave is its),
# which serves none of the services' routes; without it, nothing.
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


@pytest.mark.parametrize(
    "value_set", ["default", "tls", "replicas-and-images", "existing-secrets", "no-storefront"]
)
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
    storefront = VALUE_SETS["checkout"][value_set].get("storefront", {}).get("enabled", True)
    assert ("shop-storefront" in services) is storefront
    shop = ("shop-storefront", "http") if storefront else None
    for path in STOREFRONT_REQUESTS:
        assert route(ingress, host, path) == shop, path
    for path in PRIVATE_REQUESTS:
        assert route(ingress, host, path) == shop, f"{path} must reach no service from outside"
    # "/" is one Prefix route, and only with the storefront.
    roots = [p for r in ingress["spec"]["rules"] for p in r["http"]["paths"] if p["path"] == "/"]
    assert len(roots) == (1 if storefront else 0)


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
    for path in STOREFRONT_REQUESTS + PRIVATE_REQUESTS:
        assert route(ingress, "shop.example.com", path) is None, path


def test_the_operators_ingresses_together_route_as_the_umbrellas_does(helm: Helm) -> None:
    """The operator installs each chart with its own Ingress on the same host; the controller
    merges their rules (longest path first across Ingresses), so the storefront's "/" takes only
    what the services' paths leave."""
    values = {"ingress": {"enabled": True, "host": "shop.example.com"}}
    rules = [
        rule
        for chart in WORKLOADS
        for rule in _ingress(helm.template(chart, values))["spec"]["rules"]
    ]
    merged = {"spec": {"rules": rules}}
    for service, paths in PUBLIC_REQUESTS.items():
        for path in paths:
            assert route(merged, "shop.example.com", path) == (f"shop-{service}", "http"), path
    for path in STOREFRONT_REQUESTS + PRIVATE_REQUESTS:
        assert route(merged, "shop.example.com", path) == ("shop-storefront", "http"), path


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
    for path in STOREFRONT_REQUESTS + PRIVATE_REQUESTS:
        assert route(ingress, "shop.example.com", path) is None, path
