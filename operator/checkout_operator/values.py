"""A ``Checkout`` spec turned into the values of its charts: the four service charts, the
storefront's, and the backup chart's when the spec asks for backups (pure functions).

They take the spec decoded once (`spec.CheckoutSpec`), whose defaults are the CRD's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .spec import CheckoutSpec, ImageSpec, WorkloadSpec

GROUP = "checkout.platform.io"
VERSION = "v1alpha1"
PLURAL = "checkouts"

SERVICES = ("auth", "product", "cart", "order")
"""The four API services: each has its own database and mounts the two keyrings, so each has a
database credential, a StatefulSet, and pods the key rotation asks for their keys."""
STOREFRONT = "storefront"
"""The web shop: a chart with a Deployment, no database and no keyrings (it calls the services
with the shopper's token); it signs its forms with a CSRF secret. ``spec.storefront.enabled``."""
WORKLOADS = (*SERVICES, STOREFRONT)
"""Every chart the operator may render, each a Deployment with an ``<X>Available`` condition."""
BACKUP = "backup"
"""The backup chart (a CronJob; no Deployment, so no condition of its own): ``spec.backup``."""
OWNER_LABEL = f"{GROUP}/owner"
"""Every child carries it (value: the Checkout's name); pruning and deletion select by it."""
HASH_ANNOTATION = f"{GROUP}/config-hash"
"""Digest of what the operator last applied to a child: a changed spec shows as a changed hash."""

_DIGEST = re.compile(r"^(?P<repository>[^@]+)@(?P<digest>sha256:[a-f0-9]{64})$")


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

    @property
    def backup_claim(self) -> str:
        """The archives' claim when ``spec.backup.target.volumeClaim.name`` is empty."""
        return f"{self.release}-backups"

    @property
    def backup_cronjob(self) -> str:
        return f"{self.release}-{BACKUP}"

    @property
    def restore_job(self) -> str:
        return f"{self.release}-restore"


def services_selector(release: str, component: str) -> str:
    """The four services' objects of one component (``api`` pods, ``database`` volume claims)
    by the labels the charts give them; the storefront's are left out (no keyring, no data)."""
    return (
        f"app.kubernetes.io/instance={release},app.kubernetes.io/component={component},"
        f"app.kubernetes.io/name in ({','.join(SERVICES)})"
    )


def service_url(release: str, namespace: str, service: str, cluster_domain: str) -> str:
    """The in-cluster address of a service: its Service listens on port 80."""
    return f"http://{release}-{service}.{namespace}.svc.{cluster_domain}:80"


def enabled_workloads(spec: CheckoutSpec) -> tuple[str, ...]:
    """The charts the spec asks for: the four services, and the storefront unless disabled."""
    return WORKLOADS if spec.storefront.enabled else SERVICES


def ingress_url(spec: CheckoutSpec) -> str | None:
    """Where clients reach the platform through the Ingress, when the spec says."""
    ingress = spec.ingress
    if not ingress.enabled or not ingress.host:
        return None
    scheme = "https" if ingress.tls.enabled else "http"
    return f"{scheme}://{ingress.host}"


@dataclass(frozen=True)
class Release:
    """One Checkout as its charts are rendered: the release (the Checkout's name) in its
    namespace, its decoded spec, and what the operator's settings add."""

    name: str
    namespace: str
    spec: CheckoutSpec
    default_images: Mapping[str, str] = field(default_factory=dict)
    """By workload; the charts' own default where a workload has none."""
    default_database_images: Mapping[str, str] = field(default_factory=dict)
    """By database engine; the chart's default for the engine where none."""
    cluster_domain: str = "cluster.local"
    operator_namespace: str | None = None
    """Where the operator's own pods run (the services' NetworkPolicy lets them in to read the
    key reports); None outside a cluster."""
    hibernate: bool = False
    """Every workload at zero replicas (the ``checkout.platform.io/hibernate`` annotation)."""
    backup_image: str | None = None
    """The image the backup Jobs run (the operator's own, which holds checkout_backup); None:
    the backup chart's default."""
    restore: RestorePlan | None = None
    """While ``spec.restore`` is being done: the archive to load; every service and the
    storefront are held at zero replicas until it succeeded (the databases run)."""


@dataclass(frozen=True)
class RestorePlan:
    """The archive a restore loads: ``archive`` (a file name, or latest) on the claim ``claim``."""

    claim: str
    archive: str = "latest"


def database_values(service: str, release: Release) -> dict[str, Any]:
    """The chart's ``mongodb`` values: the engine, and its image when the spec or the operator's
    settings name one (else the chart's default for that engine stands)."""
    mongodb = release.spec.mongodb
    engine = mongodb.engine
    values: dict[str, Any] = {
        "engine": engine,
        "auth": {"existingSecret": Names(release.name).mongodb_secret(service)},
        "storage": {
            "size": mongodb.storage.size,
            "className": mongodb.storage.class_name,
            # The StatefulSet always keeps its claims when it is deleted: one deleted by hand (and
            # put back by the operator) must find its data again. keepDataOnDelete: false is
            # carried out by the operator itself, which deletes the claims with the Checkout.
            "retainOnDelete": True,
        },
    }
    reference = mongodb.image or release.default_database_images.get(engine)
    if reference:
        image = parse_image(reference)
        if "tag" in image:
            image["digest"] = ""  # the chart's default digest would win over this tag
        values["engines"] = {engine: {"image": image}}
    resources = mongodb.resources.values() if mongodb.resources else {}
    if resources:
        values.setdefault("engines", {}).setdefault(engine, {})["resources"] = resources
    return values


def network_policy_values(spec: CheckoutSpec, operator_namespace: str | None) -> dict[str, Any]:
    """``operator_namespace``: where the operator's pods run, let in to read key reports (the
    services' charts only; the storefront holds no keys)."""
    policy = spec.network_policy
    values: dict[str, Any] = {
        "enabled": policy.enabled,
        "ingressController": {
            "namespace": policy.ingress_controller.namespace,
            "podLabels": dict(policy.ingress_controller.pod_labels),
        },
    }
    if operator_namespace:
        values["operator"] = {"namespace": operator_namespace}
    return values


def image_values(image: ImageSpec | None, default: str | None) -> dict[str, str]:
    """The chart's ``image``: the spec's fields over the operator's ``default`` reference; empty
    when neither names one (the chart's default stands)."""
    chosen = parse_image(default) if default else {}
    if image is not None:
        given = {"repository": image.repository, "tag": image.tag}
        chosen.update({part: value for part, value in given.items() if value})
        if image.tag is not None:
            chosen.pop("digest", None)
    return chosen


def _workload_values(workload: str, own: WorkloadSpec, release: Release) -> dict[str, Any]:
    """What every chart takes from the spec: replicas, autoscaling, image, resources (``own``,
    the spec's section of this workload), the services' URLs, trusted proxies and the Ingress."""
    ingress, autoscaling = release.spec.ingress, own.autoscaling
    values: dict[str, Any] = {
        "replicaCount": own.replicas,
        # Every chart is told where every service is, rather than left to derive it.
        "serviceUrls": {
            other: service_url(release.name, release.namespace, other, release.cluster_domain)
            for other in SERVICES
        },
        "autoscaling": {
            "enabled": autoscaling.enabled,
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "targetCPUUtilizationPercentage": autoscaling.target_cpu_utilization_percentage,
        },
        # They read X-Forwarded-For only from these (the ingress controller's pods).
        "trustedProxies": list(ingress.trusted_proxies),
        "ingress": {
            "enabled": ingress.enabled,
            "className": ingress.class_name,
            "host": ingress.host,
            "tls": {"enabled": ingress.tls.enabled, "secretName": ingress.tls.secret_name},
        },
    }
    tracing = release.spec.observability.tracing
    if tracing.otlp_endpoint:
        # Only when on: a Checkout without it renders as it did before tracing existed.
        values["tracing"] = {
            "otlpEndpoint": tracing.otlp_endpoint,
            "sampleRatio": tracing.sample_ratio,
        }
    if release.hibernate:
        # Only then: the values of an awake Checkout (and so its pods) stay as they were.
        values["hibernate"] = True
    if release.restore is not None:
        values["restoring"] = True  # the same: only while it lasts
    image = image_values(own.image, release.default_images.get(workload))
    if image:
        values["image"] = image
    resources = own.resources.values() if own.resources else {}
    if resources:
        values["resources"] = resources
    return values


def service_values(service: str, release: Release) -> dict[str, Any]:
    """Values for one service chart."""
    names = Names(release.name)
    values = _workload_values(service, release.spec.services.of(service), release)
    values["keyrings"] = {
        "jwt": {"secretName": names.jwt_keyring},
        "internal": {"secretName": names.internal_keyring},
    }
    values["networkPolicy"] = network_policy_values(release.spec, release.operator_namespace)
    values["mongodb"] = database_values(service, release)
    if service == "auth":
        lifetime = release.spec.secret_rotation.token_lifetime_seconds
        values["jwt"] = {"accessTokenTtlSeconds": lifetime}
    return values


def storefront_values(release: Release) -> dict[str, Any]:
    """Values for the storefront chart: no database, no keyrings (so no operator in its
    NetworkPolicy), and the CSRF Secret the operator makes (never the chart's own)."""
    values = _workload_values(STOREFRONT, release.spec.storefront, release)
    values["networkPolicy"] = network_policy_values(release.spec, None)
    values["csrf"] = {"existingSecret": Names(release.name).storefront_csrf}
    return values


def backup_claim(release: Release) -> str:
    """The claim the archives go to: the spec's, else ``<checkout>-backups``."""
    backup = release.spec.backup
    given = backup.target.volume_claim.name if backup else ""
    return given or Names(release.name).backup_claim


def backup_claim_manifest(release: Release) -> dict[str, Any] | None:
    """The archives' claim, which the operator makes when it is missing: never owned by the
    Checkout nor labelled as its child, so it outlives the shop (a restore reads it later).
    None without ``spec.backup``."""
    backup = release.spec.backup
    if backup is None:
        return None
    claim = backup.target.volume_claim
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": claim.size}},
    }
    if claim.storage_class_name:
        spec["storageClassName"] = claim.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": backup_claim(release),
            "namespace": release.namespace,
            "labels": {
                "app.kubernetes.io/instance": release.name,
                "app.kubernetes.io/component": "backups",
                "app.kubernetes.io/part-of": "checkout-platform",
                "app.kubernetes.io/managed-by": "checkout-operator",
            },
        },
        "spec": spec,
    }


def backup_values(release: Release) -> dict[str, Any]:
    """Values for the backup chart, of a spec with ``spec.backup`` (the CronJob's schedule and
    retention, the target claim and its size: a backup that would go past it fails as on a full
    disk, on storage that does not enforce sizes too) or being restored (the restore Job)."""
    backup, plan = release.spec.backup, release.restore
    if backup is None and plan is None:
        raise ValueError("backup_values needs spec.backup or a restore")
    scheduled: dict[str, Any] = {"enabled": False, "schedule": "0 3 * * *", "retention": 1}
    target: dict[str, Any] = {"claimName": plan.claim if plan else "", "capacity": ""}
    if backup is not None:
        scheduled = {
            "enabled": True,
            "schedule": backup.schedule,
            "timeZone": backup.time_zone,
            "suspend": backup.suspend,
            "retention": backup.retention,
        }
        target = {"claimName": backup_claim(release), "capacity": backup.target.volume_claim.size}
    values: dict[str, Any] = {
        "databases": list(SERVICES),
        "backup": scheduled,
        "target": target,
        "restore": (
            {"enabled": True, "claimName": plan.claim, "archive": plan.archive}
            if plan is not None
            else {"enabled": False}
        ),
        "clusterDomain": release.cluster_domain,
        "networkPolicy": {"enabled": release.spec.network_policy.enabled},
    }
    if release.hibernate:
        # As the workloads': only then, so an awake Checkout's CronJob stays as it was.
        values["hibernate"] = True
    image = image_values(None, release.backup_image)
    if image:
        values["image"] = image
    return values


def all_workload_values(release: Release) -> dict[str, dict[str, Any]]:
    """Values by chart, for every chart the spec asks for (``enabled_workloads``, and the backup
    chart with ``spec.backup``)."""
    values = {service: service_values(service, release) for service in SERVICES}
    if release.spec.storefront.enabled:
        values[STOREFRONT] = storefront_values(release)
    if release.spec.backup is not None or release.restore is not None:
        values[BACKUP] = backup_values(release)
    return values
