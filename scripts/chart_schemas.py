#!/usr/bin/env python3
"""Generate values.schema.json of the service, storefront and backup charts from one definition.

The service charts share their values layout (they render the same library templates), so their
schemas are written from this one source instead of four hand-kept copies; auth adds its own keys.
The storefront's chart renders the same templates without a database or keyrings: its schema is
the same layout without those keys, plus its CSRF secret. The backup chart (a CronJob and a
restore Job, no Deployment) has a layout of its own, built from the same pieces.
Run it after changing a schema: `python scripts/chart_schemas.py`; `--check` exits 1 when a
committed schema differs from what this script generates (the chart tests run that check).
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("auth", "product", "cart", "order")
STOREFRONT = "storefront"
BACKUP = "backup"
CHARTS = (*SERVICES, STOREFRONT, BACKUP)
Schema = dict[str, Any]

QUANTITY = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"},
    ]
}
STORAGE_SIZE = {
    "type": "string",
    "pattern": r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|K|M|G|T|P)?$",
    "description": "A Kubernetes quantity, e.g. 1Gi.",
}
IMAGE_TAG = {
    "type": "string",
    "not": {"const": "latest"},
    "description": "Image tag; empty means the chart's appVersion. 'latest' is refused.",
}
DIGEST = {"type": "string", "pattern": r"^(sha256:[a-f0-9]{64})?$"}
PULL_POLICY = {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]}
DNS_NAME = {"type": "string", "pattern": r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$", "maxLength": 63}
URL = {"type": "string", "pattern": r"^(https?://[^\s/]+(/[^\s]*)?)?$"}
# An IPv4 or IPv6 address, optionally with a prefix length (the services check the value itself).
IP_OR_CIDR = r"^[0-9a-fA-F:.]+(/[0-9]{1,3})?$"
ANY_OBJECT: Schema = {"type": "object"}
HOST = {
    "type": "string",
    "pattern": r"^((\*\.)?([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$",
    "description": "A DNS name (optionally *.wildcard); empty means any host.",
}


def obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = required
    schema.update(extra)
    return schema


def image(repository_hint: str, tag_required: bool = False) -> Schema:
    tag = IMAGE_TAG | {"minLength": 1} if tag_required else IMAGE_TAG
    return obj(
        {
            "repository": {"type": "string", "minLength": 1, "description": repository_hint},
            "tag": tag,
            "digest": DIGEST,
            "pullPolicy": PULL_POLICY,
        },
        required=["repository", "tag", "pullPolicy"],
    )


def resources() -> Schema:
    quantities = {"type": "object", "additionalProperties": QUANTITY}
    return obj(
        {"requests": quantities, "limits": quantities},
        required=["requests", "limits"],
        description="Requests and limits are both required: every pod is sized.",
    )


def pods(what: str) -> Schema:
    """A network peer: pods with these labels in this namespace."""
    labels = {"type": "object", "additionalProperties": {"type": "string"}}
    return obj(
        {"namespace": DNS_NAME, "podLabels": labels},
        description=f"{what}: pods with these labels in this namespace (empty: the release's).",
    )


def network_policy(*, operator: bool = True) -> Schema:
    """``operator``: the chart's pods hold keyrings, whose key reports the operator reads."""
    rules = {"type": "array", "items": {"type": "object"}}
    peers = {"enabled": {"type": "boolean"}, "ingressController": pods("The ingress controller")}
    if operator:
        peers["operator"] = pods("The operator")
    return obj(
        {**peers, "dns": pods("Cluster DNS"), "extraIngress": rules, "extraEgress": rules},
        required=["enabled"],
    )


def pod_security_context() -> Schema:
    return {
        "type": "object",
        "required": ["runAsNonRoot"],
        "properties": {
            "runAsNonRoot": {"const": True, "description": "Pods never run as root."},
            "runAsUser": {"type": "integer", "minimum": 1},
            "runAsGroup": {"type": "integer", "minimum": 1},
            "fsGroup": {"type": "integer", "minimum": 1},
        },
    }


def container_security_context() -> Schema:
    return {
        "type": "object",
        "required": ["allowPrivilegeEscalation", "readOnlyRootFilesystem", "capabilities"],
        "properties": {
            "runAsNonRoot": {"const": True},
            "privileged": {"const": False},
            "allowPrivilegeEscalation": {"const": False},
            "readOnlyRootFilesystem": {"type": "boolean"},
            "capabilities": {
                "type": "object",
                "required": ["drop"],
                "properties": {
                    "drop": {"type": "array", "contains": {"const": "ALL"}},
                    "add": {"type": "array", "maxItems": 0},
                },
            },
        },
    }


def service_urls() -> Schema:
    return obj({name: URL for name in SERVICES})


def trusted_proxies() -> Schema:
    return {
        "type": "array",
        "items": {"type": "string", "pattern": IP_OR_CIDR},
        "description": "IP addresses or CIDR networks whose X-Forwarded-For names the client.",
    }


def tracing() -> Schema:
    return obj(
        {
            "otlpEndpoint": {
                "type": "string",
                "pattern": r"^(https?://[^\s/:]+(:[0-9]{1,5})?(/[^\s]*)?)?$",
                "description": "OTLP/HTTP endpoint traces go to (OTEL_EXPORTER_OTLP_ENDPOINT), "
                "e.g. http://jaeger-collector.observability:4318; empty: off.",
            },
            "sampleRatio": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "Share of the traces a pod starts that are kept.",
            },
        }
    )


def keyrings() -> Schema:
    ref = obj({"secretName": DNS_NAME | {"maxLength": 253}})
    return obj({"jwt": ref, "internal": ref})


API_PATH: Schema = {
    "type": "string",
    "pattern": "^/api/[A-Za-z0-9._~/-]+$",
    "description": "Public prefixes only (under /api/); never /internal/.",
}
# The storefront serves every path the API paths leave: "/" by default, or prefixes of its pages.
PAGE_PATH: Schema = {
    "type": "string",
    "pattern": "^/([A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*)?$",
    "not_": {"pattern": "^/internal(/|$)"},
    "description": "/ or a prefix of the shop's pages; never /internal/.",
}


def ingress(paths: list[str], path: Schema = API_PATH) -> Schema:
    return obj(
        {
            "enabled": {"type": "boolean"},
            "className": {"type": "string"},
            "host": HOST,
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            "tls": obj({"enabled": {"type": "boolean"}, "secretName": {"type": "string"}}),
            "paths": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": path,
                "default": paths,
            },
        },
        required=["enabled", "paths"],
        allOf=[
            {
                "if": {"properties": {"tls": {"properties": {"enabled": {"const": True}}}}},
                "then": {
                    "properties": {
                        "host": {"minLength": 1},
                        "tls": {"properties": {"secretName": {"minLength": 1}}},
                    }
                },
            }
        ],
    )


# The database engines a service chart can run (charts/checkout-lib/templates/_mongodb.tpl).
DATABASE_ENGINES = ("mongodb", "ferretdb")


def database_engines() -> Schema:
    mongodb = obj(
        {
            "image": image("The official image, e.g. mongo.", tag_required=True),
            "wiredTigerCacheSizeGB": {"type": "number", "minimum": 0.25},
            "resources": resources(),
        },
        required=["image", "resources"],
    )
    ferretdb = obj(
        {
            "image": image(
                "An image whose entrypoint is the ferretdb binary, e.g. ghcr.io/ferretdb/ferretdb.",
                tag_required=True,
            ),
            "debugPort": {
                "type": "integer",
                "minimum": 1024,
                "maximum": 65535,
                "not_": {"const": 27017},
            },
            "logLevel": {"type": "string", "enum": ["DEBUG", "INFO", "WARN", "ERROR"]},
            "resources": resources(),
        },
        required=["image", "debugPort", "logLevel", "resources"],
    )
    return obj({"mongodb": mongodb, "ferretdb": ferretdb}, required=list(DATABASE_ENGINES))


def mongodb() -> Schema:
    return obj(
        {
            "enabled": {"type": "boolean"},
            "engine": {
                "type": "string",
                "enum": list(DATABASE_ENGINES),
                "description": "The database server: mongodb (the official image) or ferretdb "
                "(FerretDB on SQLite).",
            },
            "database": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{0,63}$"},
            "externalUri": {"type": "string", "pattern": r"^(mongodb(\+srv)?://.+)?$"},
            "auth": obj(
                {
                    "existingSecret": DNS_NAME | {"maxLength": 253},
                    "rootUsername": {"type": "string", "minLength": 1},
                }
            ),
            "storage": obj(
                {
                    "size": STORAGE_SIZE,
                    "className": {"type": "string"},
                    "retainOnDelete": {"type": "boolean"},
                },
                required=["size"],
            ),
            "podSecurityContext": pod_security_context(),
            "securityContext": container_security_context(),
            "engines": database_engines(),
        },
        required=["enabled", "engine", "auth", "storage", "engines"],
        allOf=[
            {
                "if": {"properties": {"enabled": {"const": False}}},
                "then": {
                    "properties": {
                        "externalUri": {"minLength": 1},
                        "auth": {"properties": {"existingSecret": {"minLength": 1}}},
                    },
                    "description": "Without the bundled MongoDB, externalUri and "
                    "auth.existingSecret are required.",
                },
            }
        ],
    )


def global_values() -> Schema:
    # Values shared with the umbrella chart; its own schema describes them in full.
    return {"type": "object"}


def workload_properties(chart: str, what: str) -> dict[str, Any]:
    """The keys every chart on the library has: its Deployment, Service, policies and Ingress."""
    return {
        "global": global_values(),
        # Helm adds an entry for every dependency, the library chart included.
        "checkout-lib": {"type": "object"},
        "nameOverride": {"type": "string", "maxLength": 40},
        "fullnameOverride": {"type": "string", "maxLength": 63},
        "image": image(f"Image repository of the {what}, e.g. checkout/{chart}."),
        "imagePullSecrets": {"type": "array", "items": obj({"name": {"type": "string"}})},
        "replicaCount": {"type": "integer", "minimum": 1, "maximum": 20},
        "hibernate": {
            "type": "boolean",
            "description": "Every workload of the chart at zero replicas (no autoscaler); "
            "volumes and Secrets are kept.",
        },
        "restoring": {
            "type": "boolean",
            "description": "The Deployment at zero replicas (no autoscaler) while the operator "
            "restores the databases from a backup; the database keeps running.",
        },
        "containerPort": {"type": "integer", "minimum": 1024, "maximum": 65535},
        "shutdownDelaySeconds": {"type": "integer", "minimum": 0, "maximum": 60},
        "logLevel": {"type": "string", "enum": ["DEBUG", "INFO", "WARNING", "ERROR"]},
        "serviceUrls": service_urls(),
        "trustedProxies": trusted_proxies(),
        "tracing": tracing(),
        "config": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean"]},
            "propertyNames": {"pattern": "^[A-Z][A-Z0-9_]*$"},
        },
        "extraEnv": {"type": "array", "items": {"type": "object", "required": ["name"]}},
        "resources": resources(),
        "autoscaling": obj(
            {
                "enabled": {"type": "boolean"},
                "minReplicas": {"type": "integer", "minimum": 1},
                "maxReplicas": {"type": "integer", "minimum": 1, "maximum": 50},
                "targetCPUUtilizationPercentage": {"type": "integer", "minimum": 1, "maximum": 100},
            },
            required=["enabled"],
        ),
        "networkPolicy": network_policy(),
        "podDisruptionBudget": obj(
            {
                "enabled": {"type": "boolean"},
                "maxUnavailable": {"type": ["integer", "string"]},
                "minAvailable": {"type": ["integer", "string"]},
            },
            required=["enabled"],
            description="minAvailable, when set, wins over maxUnavailable.",
        ),
        "serviceAccount": obj(
            {
                "create": {"type": "boolean"},
                "name": DNS_NAME | {"maxLength": 253},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            required=["create"],
        ),
        "podAnnotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "podLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "podSecurityContext": pod_security_context(),
        "securityContext": container_security_context(),
        "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}},
        "tolerations": {"type": "array", "items": ANY_OBJECT},
        "affinity": ANY_OBJECT,
    }


def service_schema(service: str) -> Schema:
    jwt: dict[str, Any] = {
        "issuer": {"type": "string", "minLength": 1},
        "audience": {"type": "string", "minLength": 1},
    }
    properties = _insert_after(
        workload_properties(service, f"{service} service"),
        {
            "logLevel": {"jwt": obj(jwt, required=["issuer", "audience"])},
            "trustedProxies": {"keyrings": keyrings()},
            "affinity": {"ingress": ingress(DEFAULT_PATHS[service]), "mongodb": mongodb()},
        },
    )
    if service == "auth":
        jwt["accessTokenTtlSeconds"] = {"type": "integer", "minimum": 60, "maximum": 86400}
        properties["bootstrapAdmin"] = obj(
            {
                "existingSecret": DNS_NAME | {"maxLength": 253},
                "emailKey": {"type": "string", "minLength": 1},
                "passwordKey": {"type": "string", "minLength": 1},
            }
        )
    return _values_schema(properties, "mongodb", title=f"Values of the {service} service chart")


def storefront_schema() -> Schema:
    properties = workload_properties(STOREFRONT, "storefront (the web shop)")
    properties |= {
        "enabled": {
            "type": "boolean",
            "description": "Read by the umbrella chart (its dependency condition); ignored here.",
        },
        "networkPolicy": network_policy(operator=False),
        "csrf": obj(
            {"existingSecret": DNS_NAME | {"maxLength": 253}},
            description="A Secret with key csrf-secret (at least 32 characters) that signs the "
            "forms' CSRF tokens; empty: <release>-storefront-csrf, generated once and kept.",
        ),
        "ingress": ingress(["/"], PAGE_PATH),
    }
    return _values_schema(properties, "csrf", title="Values of the storefront chart")


def _values_schema(properties: Schema, own: str, *, title: str) -> Schema:
    """A chart's values schema: what every workload chart requires, plus its ``own`` block."""
    required = ["image", "replicaCount", "resources", "podSecurityContext", "securityContext"]
    schema = obj(properties, required=[*required, own, "ingress"], title=title)
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    return _rename_keywords(schema)


CRON = {
    "type": "string",
    "pattern": r"^((\S+\s+){4}\S+|@(yearly|annually|monthly|weekly|daily|midnight|hourly))$",
    "description": "A cron expression (5 fields) or a macro such as @daily.",
}
ARCHIVE = {
    "type": "string",
    "pattern": r"^(latest|[a-z0-9][-a-z0-9]*-\d{8}T\d{6}\.\d{3}Z\.tar\.gz)$",
    "description": "latest (the newest archive on the claim) or an archive's file name.",
}
DEADLINE = {"type": "integer", "minimum": 60, "maximum": 86400}


def backup_schema() -> Schema:
    """The backup chart: which databases, the CronJob's schedule and retention, the claims."""
    properties: Schema = {
        "global": global_values(),
        "checkout-lib": {"type": "object"},
        "image": image("Image repository holding python -m checkout_backup (the operator's)."),
        "databases": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "enum": list(SERVICES)},
            "description": "The services whose databases are backed up or restored.",
        },
        "backup": obj(
            {
                "enabled": {"type": "boolean"},
                "schedule": CRON,
                "timeZone": {
                    "type": "string",
                    "pattern": r"^([A-Za-z_]+(/[A-Za-z0-9_+-]+)*)?$",
                    "description": "An IANA time zone (e.g. Europe/Berlin); empty: the API "
                    "server's.",
                },
                "suspend": {"type": "boolean"},
                "retention": {"type": "integer", "minimum": 1, "maximum": 1000},
                "activeDeadlineSeconds": DEADLINE,
            },
            required=["enabled", "schedule", "retention"],
        ),
        "hibernate": {"type": "boolean"},
        "target": obj(
            {
                "claimName": DNS_NAME | {"maxLength": 253},
                "capacity": {"anyOf": [{"const": ""}, STORAGE_SIZE]},
            },
            required=["claimName"],
            description="The volume claim the archives go to (made by the operator, not here).",
        ),
        "restore": obj(
            {
                "enabled": {"type": "boolean"},
                "claimName": DNS_NAME | {"maxLength": 253},
                "archive": ARCHIVE,
                "activeDeadlineSeconds": DEADLINE,
            },
            required=["enabled"],
        ),
        "clusterDomain": {"type": "string", "pattern": r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$"},
        "resources": resources(),
        "networkPolicy": obj(
            {
                "enabled": {"type": "boolean"},
                "dns": pods("Cluster DNS"),
            },
            required=["enabled"],
        ),
    }
    schema = obj(
        properties,
        required=["image", "databases", "backup", "target", "restore", "resources"],
        title="Values of the backup chart",
    )
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    return _rename_keywords(schema)


def chart_schema(chart: str) -> Schema:
    if chart == BACKUP:
        return backup_schema()
    return storefront_schema() if chart == STOREFRONT else service_schema(chart)


# Public path prefixes of each service, the single list the charts' values.yaml must repeat.
DEFAULT_PATHS = {
    "auth": ["/api/v1/auth", "/api/v1/users", "/api/auth", "/api/user"],
    "product": ["/api/v1/products", "/api/get-product", "/api/get-product-one"],
    "cart": ["/api/v1/cart", "/api/cart"],
    "order": ["/api/v1/orders", "/api/order"],
}


def _insert_after(properties: Schema, additions: dict[str, Schema]) -> Schema:
    """``properties`` with each group of ``additions`` placed after the key it is filed under
    (the order values.yaml lists them in)."""
    result: Schema = {}
    for key, value in properties.items():
        result[key] = value
        result.update(additions.get(key, {}))
    return result


def _rename_keywords(node: Any) -> Any:
    """`not` is a Python keyword; the helpers spell it `not_`."""
    if isinstance(node, dict):
        return {("not" if k == "not_" else k): _rename_keywords(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename_keywords(v) for v in node]
    return node


def render(schema: Schema) -> str:
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def schema_path(chart: str) -> Path:
    return ROOT / "charts" / chart / "values.schema.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a schema is out of date")
    args = parser.parse_args(argv)
    stale = []
    for chart in CHARTS:
        text = render(chart_schema(chart))
        path = schema_path(chart)
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.write_text(text)
    if stale:
        print("out of date (run python scripts/chart_schemas.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
