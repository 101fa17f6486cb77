"""Fixtures of the chart tests: one dependency-built copy of charts/ per session (per xdist
worker), and the value sets every chart is rendered with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from checkout_operator.spec import decode_spec
from checkout_operator.values import Release, all_workload_values

from tests.infra.helm import ALL_CHARTS, ROOT, WORKLOADS, Helm, helm_path, prepared_helm

SERVICES = ("auth", "product", "cart", "order")

# The Kubernetes version every rendered object must be valid for, pinned here and nowhere else
# for the schemas: kubernetes-validate ships the 1.35.0 OpenAPI schemas (its package version is
# the newest Kubernetes it knows, not this one). The same minor runs everywhere else: kind's node
# image (k8s/kind-cluster.yaml), the envtest API server (k8s/offline/kubernetes/go.mod) and the
# kubectl of the pinned PyPI layer; test_one_kubernetes_minor_everywhere holds them together.
KUBERNETES_VERSION = "1.35.0"

# Value sets each chart is linted, rendered and policy-checked with, besides its defaults.
VALUE_SETS: dict[str, dict[str, dict[str, Any]]] = {
    "auth": {
        "default": {},
        "replicas-and-images": {
            "replicaCount": 3,
            "image": {"repository": "registry.example.com/shop/auth", "tag": "1.2.3"},
            "mongodb": {
                "engines": {
                    "mongodb": {
                        "image": {"repository": "mirror.example.com/mongo", "tag": "7.0.14"}
                    }
                }
            },
        },
        "ferretdb": {"mongodb": {"engine": "ferretdb"}},
        "ferretdb-mirror-existing-secret": {
            "mongodb": {
                "engine": "ferretdb",
                "auth": {"existingSecret": "auth-db-root"},
                "storage": {"size": "5Gi", "className": "fast"},
                "engines": {
                    "ferretdb": {
                        "image": {
                            "repository": "mirror.example.com/ferretdb",
                            "digest": "sha256:" + "f" * 64,
                        },
                        "debugPort": 9088,
                        "logLevel": "INFO",
                    }
                },
            }
        },
        "existing-secrets": {
            "keyrings": {"jwt": {"secretName": "jwt-ring"}, "internal": {"secretName": "api-ring"}},
            "mongodb": {"auth": {"existingSecret": "auth-db-root"}},
            "bootstrapAdmin": {"existingSecret": "first-admin"},
        },
        "operator-style": {
            "serviceUrls": {"product": "http://catalogue.shop.svc:80"},
            "ingress": {
                "enabled": True,
                "host": "shop.example.com",
                "tls": {"enabled": True, "secretName": "shop-tls"},
            },
            "mongodb": {"storage": {"size": "5Gi", "className": "fast", "retainOnDelete": False}},
        },
        "autoscaling-digest": {
            "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6},
            "image": {"digest": "sha256:" + "a" * 64},
            "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
        },
        "external-mongodb": {
            "mongodb": {
                "enabled": False,
                "externalUri": "mongodb://db.example.com:27017/?authSource=admin",
                "auth": {"existingSecret": "external-db"},
            }
        },
    },
    "product": {
        "default": {},
        "replicas": {"replicaCount": 2, "podDisruptionBudget": {"enabled": False}},
    },
    "cart": {"default": {}, "digest": {"image": {"digest": "sha256:" + "b" * 64}}},
    "order": {"default": {}, "logging": {"logLevel": "DEBUG", "config": {"ORDER_MAX_LINES": 50}}},
    "storefront": {
        "default": {},
        "standalone-tls": {
            "ingress": {
                "enabled": True,
                "host": "shop.example.com",
                "tls": {"enabled": True, "secretName": "shop-tls"},
            },
            "csrf": {"existingSecret": "shop-csrf"},
            "serviceUrls": {"product": "http://catalogue.shop.svc:80"},
        },
        "autoscaling-digest": {
            "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 4},
            "image": {"digest": "sha256:" + "c" * 64},
            "config": {"PAGE_SIZE": 24, "HTTP_TIMEOUT_SECONDS": 2.5},
            "networkPolicy": {"enabled": False},
        },
    },
    "checkout": {
        "default": {},
        "tls": {
            "global": {"tls": True},
            "ingress": {
                "host": "shop.example.com",
                "className": "public",
                "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                "tls": {"enabled": True, "secretName": "shop-example-tls"},
            },
        },
        "no-storefront": {"storefront": {"enabled": False}},
        "replicas-and-images": {
            "auth": {
                "replicaCount": 2,
                "image": {"repository": "r.example.com/auth", "tag": "2.0.0"},
            },
            "product": {"replicaCount": 3},
            "cart": {"image": {"repository": "r.example.com/cart", "tag": "2.0.0"}},
            "order": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 4}},
            "storefront": {
                "replicaCount": 2,
                "image": {"repository": "r.example.com/storefront", "tag": "2.0.0"},
            },
        },
        "existing-secrets": {
            "global": {
                "keyrings": {
                    "jwt": {"existingSecret": "shop-jwt"},
                    "internal": {"existingSecret": "shop-internal"},
                }
            },
            "auth": {"mongodb": {"auth": {"existingSecret": "auth-db"}}},
            "product": {"mongodb": {"auth": {"existingSecret": "product-db"}}},
            "cart": {"mongodb": {"auth": {"existingSecret": "cart-db"}}},
            "order": {"mongodb": {"auth": {"existingSecret": "order-db"}}},
            "storefront": {"csrf": {"existingSecret": "shop-csrf"}},
        },
        "no-ingress": {"ingress": {"enabled": False}, "global": {"clusterDomain": "corp.local"}},
        "ferretdb": {service: {"mongodb": {"engine": "ferretdb"}} for service in SERVICES},
    },
    "checkout-operator": {
        "default": {},
        "namespaced": {"watchNamespaces": ["shop-a", "shop-b"], "logLevel": "DEBUG"},
        "custom-images": {
            "image": {"repository": "r.example.com/operator", "tag": "0.2.0"},
            "serviceImages": {
                "auth": {"repository": "r.example.com/auth", "tag": "0.2.0"},
                "product": {"repository": "r.example.com/product", "tag": "0.2.0"},
                "cart": {"repository": "r.example.com/cart", "tag": "0.2.0"},
                "order": {"repository": "r.example.com/order", "tag": "0.2.0"},
                "storefront": {"repository": "r.example.com/storefront", "tag": "0.2.0"},
            },
            "databaseImages": {
                "mongodb": {"repository": "r.example.com/mongo", "tag": "7.0.14"},
                "ferretdb": {"repository": "r.example.com/ferretdb", "tag": "1.24.2"},
            },
        },
    },
}


def operator_values(**mongodb: Any) -> dict[str, dict[str, Any]]:
    """The values the operator gives each chart for k8s/checkout-sample.yaml, with
    ``mongodb`` keys replaced (its own pure function, operator/checkout_operator/values.py): the
    charts' side of that contract."""
    sample = yaml.safe_load((ROOT / "k8s" / "checkout-sample.yaml").read_text())
    sample["spec"]["mongodb"].update(mongodb)
    values = all_workload_values(
        Release(
            "shop",
            "checkout",
            decode_spec(sample["spec"]),
            default_images={w: f"registry.example.com/checkout/{w}:0.1.0" for w in WORKLOADS},
        )
    )
    return values


for _chart, _values in operator_values().items():
    VALUE_SETS[_chart]["operator-sample"] = _values
for _chart, _values in operator_values(engine="ferretdb").items():
    if _chart in SERVICES:  # the storefront has no database: its values are the sample's
        VALUE_SETS[_chart]["operator-ferretdb"] = _values

CASES = [(chart, name) for chart in ALL_CHARTS for name in VALUE_SETS[chart]]
CASE_IDS = [f"{chart}:{name}" for chart, name in CASES]


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    helm_path()  # fetch the pinned binary once, before any test times it
    return prepared_helm(tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="session")
def rendered(helm: Helm) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every chart rendered with every value set, once per session."""
    return {(chart, name): helm.template(chart, VALUE_SETS[chart][name]) for chart, name in CASES}


def objects_of(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def repo_path(*parts: str) -> Path:
    return Path(__file__).resolve().parents[2].joinpath(*parts)
