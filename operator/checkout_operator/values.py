"""A ``Checkout`` spec turned into the values of its charts: the four service charts and the
storefront's (pure functions).

The API server has already validated and defaulted the spec against the CRD's schema; these
functions still read it defensively (``.get`` with the same defaults) so that they also accept a
spec written by hand in a test.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GROUP = "checkout.platform.io"
VERSION = "v1alpha1"
PLURAL = "checkouts"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Checkout"

SERVICES = ("auth", "product", "cart", "order")
"""The four API services: each has its own database and mounts the two keyrings, so each has a
database credential, a StatefulSet, and pods the key rotation asks for their keys."""
STOREFRONT = "storefront"
"""The web shop: a chart with a Deployment, no database and no keyrings (it calls the services
with the shopper's token); it signs its forms with a CSRF secret. ``spec.storefront.enabled``."""
WORKLOADS = (*SERVICES, STOREFRONT)
"""Every chart the operator may render, each a Deployment with an ``<X>Available`` condition."""
DATABASE_ENGINES = ("mongodb", "ferretdb")
"""The values of ``spec.mongodb.engine`` and of the charts' ``mongodb.engine``; the first is the
default."""
OWNER_LABEL = f"{GROUP}/owner"
"""Every child carries it (value: the Checkout's name); pruning and deletion select by it."""
HASH_ANNOTATION = f"{GROUP}/config-hash"
"""Digest of what the operator last applied to a child: a changed spec shows as a changed hash."""

_DIGEST = re.compile(r"^(?P<repository>[^@]+)@(?P<digest>sha256:[a-f0-9]{64})$")


def _map(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def parse_image(reference: str) -> dict[str, str]:
    """``repo[:port]/name:tag`` or ``repo@sha256:...`` as the charts' ``image`` map."""
    found = _DIGEST.match(reference)
    if found:
        return {"repository": found["repository"], "digest": found["digest"]}
    repository, sep, tag = reference.rpartition(":")
    if sep and "/" not in tag:
        return {"repository": repository, "tag": tag}
    return {"repository": reference}


@dataclass(frozen=True)
class Names:
    """Names of what the operator creates for the Checkout ``release`` beside the charts."""

    release: str

    @property
    def jwt_keyring(self) -> str:
        return f"{self.release}-jwt-keyring"

    @property
    def internal_keyring(self) -> str:
        return f"{self.release}-internal-keyring"

    @property
    def storefront_csrf(self) -> str:
        return f"{self.release}-{STOREFRONT}-csrf"

    def mongodb_secret(self, service: str) -> str:
        return f"{self.release}-{service}-mongodb"

    def deployment(self, workload: str) -> str:
        return f"{self.release}-{workload}"

    def statefulset(self, service: str) -> str:
        # As checkout-lib.mongodb.fullname, which the CRD's name-length rule keeps untruncated.
        return f"{self.release}-{service}-mongodb"


def service_url(release: str, namespace: str, service: str, cluster_domain: str) -> str:
    """The in-cluster address of a service: its Service listens on port 80."""
    return f"http://{release}-{service}.{namespace}.svc.{cluster_domain}:80"


def storefront_enabled(spec: Mapping[str, Any]) -> bool:
    return bool(_map(spec.get("storefront")).get("enabled", True))


def enabled_workloads(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The charts the spec asks for: the four services, and the storefront unless disabled."""
    return WORKLOADS if storefront_enabled(spec) else SERVICES


def ingress_url(spec: Mapping[str, Any]) -> str | None:
    """Where clients reach the platform through the Ingress, when the spec says."""
    ingress = _map(spec.get("ingress"))
    if not ingress.get("enabled", True) or not ingress.get("host"):
        return None
    scheme = "https" if _map(ingress.get("tls")).get("enabled", False) else "http"
    return f"{scheme}://{ingress['host']}"


def database_values(
    service: str,
    *,
    release: str,
    spec: Mapping[str, Any],
    default_database_images: Mapping[str, str],
) -> dict[str, Any]:
    """The chart's ``mongodb`` values: the engine, and its image when the spec or the operator's
    settings name one (else the chart's default for that engine stands)."""
    mongodb = _map(spec.get("mongodb"))
    storage = _map(mongodb.get("storage"))
    engine = str(mongodb.get("engine") or DATABASE_ENGINES[0])
    values: dict[str, Any] = {
        "engine": engine,
        "auth": {"existingSecret": Names(release).mongodb_secret(service)},
        "storage": {
            "size": str(storage.get("size", "1Gi")),
            "className": str(storage.get("className", "")),
            # The StatefulSet always keeps its claims when it is deleted: one deleted by hand (and
            # put back by the operator) must find its data again. keepDataOnDelete: false is
            # carried out by the operator itself, which deletes the claims with the Checkout.
            "retainOnDelete": True,
        },
    }
    reference = mongodb.get("image") or default_database_images.get(engine)
    if reference:
        image = parse_image(str(reference))
        if "tag" in image:
            image["digest"] = ""  # the chart's default digest would win over this tag
        values["engines"] = {engine: {"image": image}}
    resources = _map(mongodb.get("resources"))
    if resources:
        chosen = values.setdefault("engines", {}).setdefault(engine, {})
        chosen["resources"] = {
            part: _map(resources[part]) for part in ("requests", "limits") if part in resources
        }
    return values


def network_policy_values(
    spec: Mapping[str, Any], operator_namespace: str | None
) -> dict[str, Any]:
    """``operator_namespace``: where the operator's pods run, let in to read key reports (the
    services' charts only; the storefront holds no keys)."""
    policy = _map(spec.get("networkPolicy"))
    controller = _map(policy.get("ingressController"))
    values: dict[str, Any] = {
        "enabled": bool(policy.get("enabled", True)),
        "ingressController": {
            "namespace": str(controller.get("namespace") or "traefik"),
            "podLabels": {
                str(k): str(v)
                for k, v in _map(
                    controller.get("podLabels", {"app.kubernetes.io/name": "traefik"})
                ).items()
            },
        },
    }
    if operator_namespace:
        values["operator"] = {"namespace": operator_namespace}
    return values


def _workload_values(
    workload: str,
    own: Mapping[str, Any],
    *,
    release: str,
    namespace: str,
    spec: Mapping[str, Any],
    default_images: Mapping[str, str],
    cluster_domain: str,
) -> dict[str, Any]:
    """What every chart takes from the spec: replicas, autoscaling, image, resources (``own``,
    the spec's section of this workload), the services' URLs, trusted proxies and the Ingress."""
    ingress = _map(spec.get("ingress"))
    tls = _map(ingress.get("tls"))
    autoscaling = _map(own.get("autoscaling"))
    values: dict[str, Any] = {
        "replicaCount": int(own.get("replicas", 1)),
        # Every chart is told where every service is, rather than left to derive it.
        "serviceUrls": {
            other: service_url(release, namespace, other, cluster_domain) for other in SERVICES
        },
        "autoscaling": {
            "enabled": bool(autoscaling.get("enabled", False)),
            "minReplicas": int(autoscaling.get("minReplicas", 2)),
            "maxReplicas": int(autoscaling.get("maxReplicas", 5)),
            "targetCPUUtilizationPercentage": int(
                autoscaling.get("targetCPUUtilizationPercentage", 75)
            ),
        },
        # They read X-Forwarded-For only from these (the ingress controller's pods).
        "trustedProxies": [str(entry) for entry in ingress.get("trustedProxies") or []],
        "ingress": {
            "enabled": bool(ingress.get("enabled", True)),
            "className": str(ingress.get("className", "traefik")),
            "host": str(ingress.get("host", "")),
            "tls": {
                "enabled": bool(tls.get("enabled", False)),
                "secretName": str(tls.get("secretName", "")),
            },
        },
    }
    image = _map(own.get("image"))
    default = parse_image(default_images[workload]) if workload in default_images else {}
    if image or default:
        chosen = {**default, **{k: str(v) for k, v in image.items() if v}}
        if "tag" in image:
            chosen.pop("digest", None)
        values["image"] = chosen
    resources = _map(own.get("resources"))
    if resources:
        values["resources"] = {
            part: _map(resources[part]) for part in ("requests", "limits") if part in resources
        }
    return values


def service_values(
    service: str,
    *,
    release: str,
    namespace: str,
    spec: Mapping[str, Any],
    default_images: Mapping[str, str],
    cluster_domain: str,
    default_database_images: Mapping[str, str] | None = None,
    operator_namespace: str | None = None,
) -> dict[str, Any]:
    """Values for one service chart, rendered as release ``release`` in ``namespace``
    (``operator_namespace``: where the operator's own pods run, let in by the NetworkPolicy)."""
    names = Names(release)
    values = _workload_values(
        service,
        _map(_map(spec.get("services")).get(service)),
        release=release,
        namespace=namespace,
        spec=spec,
        default_images=default_images,
        cluster_domain=cluster_domain,
    )
    values["keyrings"] = {
        "jwt": {"secretName": names.jwt_keyring},
        "internal": {"secretName": names.internal_keyring},
    }
    values["networkPolicy"] = network_policy_values(spec, operator_namespace)
    values["mongodb"] = database_values(
        service,
        release=release,
        spec=spec,
        default_database_images=default_database_images or {},
    )
    if service == "auth":
        rotation = _map(spec.get("secretRotation"))
        values["jwt"] = {"accessTokenTtlSeconds": int(rotation.get("tokenLifetimeSeconds", 900))}
    return values


def storefront_values(
    *,
    release: str,
    namespace: str,
    spec: Mapping[str, Any],
    default_images: Mapping[str, str],
    cluster_domain: str,
) -> dict[str, Any]:
    """Values for the storefront chart: no database, no keyrings (so no operator in its
    NetworkPolicy), and the CSRF Secret the operator makes (never the chart's own)."""
    values = _workload_values(
        STOREFRONT,
        _map(spec.get("storefront")),
        release=release,
        namespace=namespace,
        spec=spec,
        default_images=default_images,
        cluster_domain=cluster_domain,
    )
    values["networkPolicy"] = network_policy_values(spec, None)
    values["csrf"] = {"existingSecret": Names(release).storefront_csrf}
    return values


def all_workload_values(
    *,
    release: str,
    namespace: str,
    spec: Mapping[str, Any],
    default_images: Mapping[str, str],
    cluster_domain: str,
    default_database_images: Mapping[str, str] | None = None,
    operator_namespace: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Values by chart, for every chart the spec asks for (``enabled_workloads``)."""
    values = {
        service: service_values(
            service,
            release=release,
            namespace=namespace,
            spec=spec,
            default_images=default_images,
            cluster_domain=cluster_domain,
            default_database_images=default_database_images,
            operator_namespace=operator_namespace,
        )
        for service in SERVICES
    }
    if storefront_enabled(spec):
        values[STOREFRONT] = storefront_values(
            release=release,
            namespace=namespace,
            spec=spec,
            default_images=default_images,
            cluster_domain=cluster_domain,
        )
    return values
