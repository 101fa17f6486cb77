"""What the storefront chart renders beyond what every chart is held to (test_policy.py,
test_render.py and test_apiserver.py run it with every value set): no database and no keyrings,
the four services' URLs, the CSRF secret the same on every replica, and Secure cookies exactly
where the shop is served over TLS."""

from __future__ import annotations

from typing import Any

import pytest

from tests.charts.conftest import SERVICES, objects_of
from tests.infra.helm import Helm

Rendered = dict[tuple[str, str], list[dict[str, Any]]]


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects_of(objects, kind) if o["metadata"]["name"] == name]
    return found


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = _one(objects, "Deployment", "shop-storefront")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _config(objects: list[dict[str, Any]]) -> dict[str, str]:
    return dict(_one(objects, "ConfigMap", "shop-storefront")["data"])


def test_it_renders_a_web_workload_without_database_or_keyrings(rendered: Rendered) -> None:
    objects = rendered[("storefront", "default")]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == [
        ("ConfigMap", "shop-storefront"),
        ("Deployment", "shop-storefront"),
        ("NetworkPolicy", "shop-storefront"),
        ("PodDisruptionBudget", "shop-storefront"),
        ("Secret", "shop-storefront-csrf"),
        ("Service", "shop-storefront"),
        ("ServiceAccount", "shop-storefront"),
    ]
    deployment = _one(objects, "Deployment", "shop-storefront")
    pod = deployment["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    container = _container(objects)
    assert container["image"] == "checkout/storefront:0.1.0"
    assert [p["containerPort"] for p in container["ports"]] == [8000]
    assert container["resources"]["requests"] == {"cpu": "50m", "memory": "96Mi"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize(
    ("value_set", "secret"),
    [("default", "shop-storefront-csrf"), ("standalone-tls", "shop-csrf")],
)
def test_the_csrf_secret_comes_from_one_secret(
    rendered: Rendered, value_set: str, secret: str
) -> None:
    objects = rendered[("storefront", value_set)]
    (env,) = _container(objects)["env"]
    assert env == {
        "name": "CSRF_SECRET",
        "valueFrom": {"secretKeyRef": {"name": secret, "key": "csrf-secret"}},
    }
    # Generated only when none is named; one named is never rendered over.
    generated = [s["metadata"]["name"] for s in objects_of(objects, "Secret")]
    assert generated == (["shop-storefront-csrf"] if value_set == "default" else [])


def test_it_is_told_where_the_four_services_are(rendered: Rendered) -> None:
    config = _config(rendered[("storefront", "default")])
    assert {k: v for k, v in config.items() if k.endswith("_URL")} == {
        f"{s.upper()}_URL": f"http://shop-{s}.checkout.svc.cluster.local:80" for s in SERVICES
    }
    assert config["SERVICE_NAME"] == "storefront"
    assert not [k for k in config if k.startswith(("MONGO_", "JWT_", "INTERNAL_"))], config
    own = _config(rendered[("storefront", "standalone-tls")])
    assert own["PRODUCT_URL"] == "http://catalogue.shop.svc:80"
    extra = _config(rendered[("storefront", "autoscaling-digest")])
    assert (extra["PAGE_SIZE"], extra["HTTP_TIMEOUT_SECONDS"]) == ("24", "2.5")


@pytest.mark.parametrize(
    ("chart", "value_set", "secure"),
    [
        ("storefront", "default", "false"),
        ("storefront", "standalone-tls", "true"),  # its own Ingress has TLS
        ("storefront", "operator-sample", "false"),  # the sample's Ingress has no TLS
        ("checkout", "default", "false"),
        ("checkout", "tls", "true"),  # the umbrella's Ingress has TLS, and global.tls says so
    ],
)
def test_cookies_are_secure_where_the_shop_is_served_over_tls(
    rendered: Rendered, chart: str, value_set: str, secure: str
) -> None:
    assert _config(rendered[(chart, value_set)])["COOKIE_SECURE"] == secure


def test_tls_ended_before_the_ingress_is_told_by_global_tls(helm: Helm) -> None:
    objects = helm.template("storefront", {"global": {"tls": True}})
    assert _config(objects)["COOKIE_SECURE"] == "true"


def test_the_umbrella_without_the_storefront_renders_none_of_it(rendered: Rendered) -> None:
    objects = rendered[("checkout", "no-storefront")]
    storefront = [o for o in objects if "storefront" in o["metadata"]["name"]]
    assert storefront == []
    assert len(objects_of(objects, "Deployment")) == len(SERVICES)
    with_it = rendered[("checkout", "default")]
    assert len(objects_of(with_it, "Deployment")) == len(SERVICES) + 1


def test_its_notes_name_its_secret_and_its_cookies(helm: Helm) -> None:
    chart = str(helm.chart("storefront"))
    result = helm.run("install", "shop", chart, "--namespace", "checkout", "--dry-run=client")
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "Secret shop-storefront-csrf (key csrf-secret), generated on install and kept" in notes
    assert "not Secure" in notes
    assert "Keyrings" not in notes and "MongoDB" not in notes
