"""values.schema.json: bad values fail at `helm template` with a message naming the value, and
the service, storefront and backup schemas are exactly what scripts/chart_schemas.py
generates."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import msgspec
import pytest
import yaml

from services.kit.settings import ServiceSettings
from tests.charts.conftest import SERVICES, repo_path
from tests.infra.helm import ALL_CHARTS, WORKLOADS, Helm

BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("auth", {"image": {"tag": "latest"}}, "/image/tag"),
    ("auth", {"replicaCount": 0}, "/replicaCount"),
    ("auth", {"replicaCount": "two"}, "/replicaCount"),
    ("auth", {"replicaCountt": 2}, "replicaCountt"),
    ("auth", {"resources": {"requests": {"cpu": "lots"}}}, "/resources"),
    ("auth", {"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
    ("auth", {"securityContext": {"allowPrivilegeEscalation": True}}, "allowPrivilegeEscalation"),
    ("auth", {"mongodb": {"storage": {"size": "big"}}}, "/mongodb/storage/size"),
    (
        "auth",
        {"mongodb": {"engines": {"mongodb": {"image": {"tag": ""}}}}},
        "/mongodb/engines/mongodb/image/tag",
    ),
    ("auth", {"mongodb": {"engine": "postgresql"}}, "at '/mongodb/engine': value must be one of"),
    ("cart", {"mongodb": {"engine": "FerretDB"}}, "at '/mongodb/engine': value must be one of"),
    (
        "product",
        {"mongodb": {"engines": {"ferretdb": {"image": {"tag": "latest"}}}}},
        "/mongodb/engines/ferretdb/image/tag",
    ),
    ("order", {"mongodb": {"engines": {"ferretdb": {"debugPort": 27017}}}}, "debugPort"),
    ("order", {"mongodb": {"engines": {"ferretdb": {"logLevel": "LOUD"}}}}, "logLevel"),
    # The key before engines existed: refused, not silently ignored.
    ("auth", {"mongodb": {"image": {"tag": "7.0.15"}}}, "'image'"),
    ("auth", {"mongodb": {"enabled": False}}, "/mongodb"),
    ("auth", {"ingress": {"paths": ["/internal/users"]}}, "/ingress/paths/0"),
    ("auth", {"ingress": {"enabled": True, "tls": {"enabled": True}}}, "/ingress"),
    ("auth", {"serviceUrls": {"cart": "cart:80"}}, "/serviceUrls/cart"),
    ("product", {"bootstrapAdmin": {"existingSecret": "x"}}, "bootstrapAdmin"),
    ("cart", {"jwt": {"accessTokenTtlSeconds": 60}}, "accessTokenTtlSeconds"),
    ("order", {"logLevel": "LOUD"}, "/logLevel"),
    ("order", {"logLevel": "CRITICAL"}, "/logLevel"),
    ("cart", {"image": {"digest": "md5:0123"}}, "/image/digest"),
    ("product", {"securityContext": {"capabilities": {"drop": ["NET_RAW"]}}}, "/securityContext"),
    ("product", {"resources": {"limits": {"memory": "lots"}}}, "/resources/limits"),
    ("checkout", {"ingress": {"host": "Shop Example"}}, "/ingress/host"),
    ("checkout", {"cart": {"mongodb": {"storage": {"size": "ten"}}}}, "/mongodb/storage/size"),
    ("checkout", {"ingress": {"tls": {"enabled": True}}}, "/ingress"),
    ("checkout", {"auth": {"replicaCount": 0}}, "/replicaCount"),
    ("checkout", {"global": {"keyrings": {"jwt": {"existingSecret": "Bad_Name"}}}}, "/global"),
    ("checkout", {"ingres": {}}, "ingres"),
    ("checkout", {"global": {"trustedProxies": ["ingress"]}}, "/global/trustedProxies/0"),
    ("auth", {"trustedProxies": "10.0.0.0/8"}, "/trustedProxies"),
    ("checkout", {"order": {"mongodb": {"engine": "sqlite"}}}, "/mongodb/engine"),
    ("checkout-operator", {"image": {"tag": "latest"}}, "/image/tag"),
    ("checkout-operator", {"watchNamespaces": ["Not A Namespace"]}, "/watchNamespaces/0"),
    ("checkout-operator", {"resources": {"limits": {"memory": "a lot"}}}, "/resources/limits"),
    (
        "checkout-operator",
        {"databaseImages": {"ferretdb": {"repository": "r.example.com/ferretdb"}}},
        "/databaseImages/ferretdb",
    ),
    ("checkout-operator", {"databaseImages": {"postgres": {}}}, "postgres"),
    ("checkout-operator", {"metrics": {"port": 80}}, "/metrics/port"),
    ("checkout-operator", {"metrics": {"port": "8081"}}, "/metrics/port"),
    ("checkout-operator", {"metrics": {"path": "/stats"}}, "'path'"),
    ("checkout-operator", {"serviceImages": {"storefront": {"tag": "latest"}}}, "storefront"),
    # The storefront has no database and no keyrings: their keys are refused, not ignored.
    ("storefront", {"mongodb": {"enabled": True}}, "'mongodb'"),
    ("storefront", {"keyrings": {"jwt": {"secretName": "shop-jwt"}}}, "'keyrings'"),
    ("storefront", {"jwt": {"issuer": "x", "audience": "y"}}, "'jwt'"),
    ("storefront", {"networkPolicy": {"enabled": True, "operator": {}}}, "'operator'"),
    ("storefront", {"csrf": {"existingSecret": "Shop_CSRF"}}, "/csrf/existingSecret"),
    ("storefront", {"csrf": None}, "csrf"),
    ("storefront", {"image": {"tag": "latest"}}, "/image/tag"),
    ("storefront", {"replicaCount": 0}, "/replicaCount"),
    ("storefront", {"resources": {"requests": {"cpu": "lots"}}}, "/resources"),
    ("storefront", {"logLevel": "CRITICAL"}, "/logLevel"),
    ("storefront", {"securityContext": {"readOnlyRootFilesystem": "no"}}, "/securityContext"),
    ("storefront", {"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext"),
    ("storefront", {"ingress": {"paths": ["/internal/v1/keys"]}}, "/ingress/paths/0"),
    ("storefront", {"ingress": {"paths": ["/internal"]}}, "/ingress/paths/0"),
    ("storefront", {"ingress": {"paths": ["shop"]}}, "/ingress/paths/0"),
    ("storefront", {"ingress": {"enabled": True, "tls": {"enabled": True}}}, "/ingress"),
    ("storefront", {"serviceUrls": {"auth": "auth:80"}}, "/serviceUrls/auth"),
    ("checkout", {"storefront": {"enabled": "yes"}}, "/storefront/enabled"),
    ("checkout", {"storefront": {"replicaCount": 0}}, "/replicaCount"),
    ("checkout", {"storefront": {"mongodb": {}}}, "'mongodb'"),
    ("checkout", {"global": {"tls": "yes"}}, "/global/tls"),
    # The operator chart's monitoring objects (tests/alerts renders them).
    ("checkout-operator", {"alerts": {"enabled": "yes"}}, "/alerts/enabled"),
    ("checkout-operator", {"serviceMonitor": {"interval": "often"}}, "/serviceMonitor/interval"),
    ("checkout-operator", {"podMonitor": {"namespaces": ["Shop A"]}}, "/podMonitor/namespaces/0"),
    ("checkout-operator", {"dashboards": {"label": "grafana dashboard"}}, "/dashboards/label"),
    ("checkout-operator", {"dashboards": {"folder": "Checkout"}}, "'folder'"),
    # The backup chart: a bad schedule, retention, archive name or database is refused before
    # any CronJob or Job is made (the claim name, always required, is given).
    ("backup", {"backup": {"schedule": "every night"}}, "/backup/schedule"),
    ("backup", {"backup": {"retention": 0}}, "/backup/retention"),
    ("backup", {"backup": {"activeDeadlineSeconds": 5}}, "/backup/activeDeadlineSeconds"),
    ("backup", {"restore": {"archive": "../../etc/passwd"}}, "/restore/archive"),
    ("backup", {"databases": ["inventory"]}, "/databases/0"),
    ("backup", {"databases": []}, "/databases"),
    ("backup", {"target": {"claimName": "shop-backups", "capacity": "lots"}}, "/target/capacity"),
    ("backup", {"target": {"claimName": "Shop Backups"}}, "/target/claimName"),
    ("backup", {"image": {"tag": "latest"}}, "/image/tag"),
    ("backup", {"resources": {"limits": {"memory": "a lot"}}}, "/resources/limits"),
    ("backup", {"schedule": "0 3 * * *"}, "'schedule'"),
]


@pytest.mark.parametrize(
    ("chart", "values", "expected"),
    BAD_VALUES,
    ids=[f"{c}:{e}" for c, _, e in BAD_VALUES],
)
def test_bad_values_fail_with_a_clear_message(
    helm: Helm, chart: str, values: dict[str, Any], expected: str
) -> None:
    result = helm.template_text(chart, values, check=False)
    assert result.returncode != 0, f"{values} rendered, but the schema should refuse it"
    assert "schema" in result.stderr
    assert expected in result.stderr, result.stderr


@pytest.mark.parametrize("chart", WORKLOADS)
def test_umbrella_refuses_a_second_ingress(helm: Helm, chart: str) -> None:
    result = helm.template_text("checkout", {chart: {"ingress": {"enabled": True}}}, check=False)
    assert result.returncode != 0
    assert f"{chart}.ingress.enabled" in result.stderr


def test_umbrella_refuses_tls_that_leaves_the_shops_cookies_insecure(helm: Helm) -> None:
    """With TLS at its Ingress, the storefront's cookies must be Secure: global.tls says so."""
    tls = {"host": "shop.example.com", "tls": {"enabled": True, "secretName": "shop-tls"}}
    result = helm.template_text("checkout", {"ingress": tls}, check=False)
    assert result.returncode != 0
    assert "global.tls: set it to true with ingress.tls.enabled" in result.stderr
    # Without the storefront there are no cookies to protect.
    helm.template_text("checkout", {"ingress": tls, "storefront": {"enabled": False}})


def test_service_schemas_are_generated() -> None:
    result = subprocess.run(
        [sys.executable, str(repo_path("scripts", "chart_schemas.py")), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _shape(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _shape(value) for key, value in node.items()}
    return type(node).__name__


def test_service_values_share_one_layout() -> None:
    """The four values.yaml differ only in the service's own image, paths and auth's extras."""
    sys.path.insert(0, str(repo_path("scripts")))
    import chart_schemas

    layouts = {}
    for service in SERVICES:
        values = yaml.safe_load(repo_path("charts", service, "values.yaml").read_text())
        assert values["image"]["repository"] == f"checkout/{service}"
        assert values["ingress"]["paths"] == chart_schemas.DEFAULT_PATHS[service]
        values.pop("bootstrapAdmin", None)
        values["jwt"].pop("accessTokenTtlSeconds", None)
        layouts[service] = _shape(values)
    assert all(layout == layouts["auth"] for layout in layouts.values())


@pytest.mark.parametrize("chart", ALL_CHARTS)
def test_every_chart_has_schema_and_notes(chart: str) -> None:
    assert repo_path("charts", chart, "values.schema.json").is_file()
    assert repo_path("charts", chart, "templates", "NOTES.txt").is_file()


def test_log_levels_are_the_ones_the_services_accept() -> None:
    """A level the schema lets through but the service refuses would crash-loop the pods."""
    (field,) = [f for f in msgspec.structs.fields(ServiceSettings) if f.name == "log_level"]
    pattern = re.search(r"\^\(([A-Z|]+)\)\$", str(field.type))
    assert pattern, field.type
    accepted = set(pattern.group(1).split("|"))
    for chart in WORKLOADS:
        schema = json.loads(repo_path("charts", chart, "values.schema.json").read_text())
        assert set(schema["properties"]["logLevel"]["enum"]) == accepted, chart
