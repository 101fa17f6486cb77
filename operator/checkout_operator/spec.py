"""A ``Checkout``'s spec decoded once into typed Structs, with its defaults in one place.

The API server validates and defaults the spec against the CRD's schema before the operator sees
it; the defaults here are the same (tests/operator/test_spec.py holds them against the CRD), so a
spec written by hand in a test, or one stored before a field existed, reads the same. A spec that
still does not fit (a type the CRD does not check, or a CRD older than the operator) is refused
with `SpecError`, naming the field.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

import msgspec

DatabaseEngine = Literal["mongodb", "ferretdb"]
DATABASE_ENGINES: tuple[DatabaseEngine, ...] = get_args(DatabaseEngine)
"""The values of ``spec.mongodb.engine`` and of the charts' ``mongodb.engine``; the first is the
default."""

_AT = re.compile(r"(?s)(?P<what>.*) - at `\$(?P<path>[^`]*)`")


class SpecError(ValueError):
    """The spec does not fit its schema; the message names the field (``spec.x.y: ...``)."""


class _Spec(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Fields by their camelCase names in the resource; unknown fields are ignored (the API
    server prunes them anyway). Each subclass says ``frozen=True`` again: mypy does not carry it
    over to subclasses."""


class ImageSpec(_Spec, frozen=True):
    """Omitted fields take the operator's default image."""

    repository: str | None = None
    tag: str | None = None


Quantities = dict[str, int | str]


class ResourcesSpec(_Spec, frozen=True):
    """Kubernetes ResourceRequirements."""

    requests: Quantities | None = None
    limits: Quantities | None = None

    def values(self) -> dict[str, Quantities]:
        """As the charts' ``resources``: only the parts given."""
        parts = {"requests": self.requests, "limits": self.limits}
        return {part: dict(given) for part, given in parts.items() if given is not None}


class AutoscalingSpec(_Spec, frozen=True):
    enabled: bool = False
    min_replicas: int = 2
    max_replicas: int = 5
    target_cpu_utilization_percentage: int = msgspec.field(
        default=75, name="targetCPUUtilizationPercentage"
    )


class WorkloadSpec(_Spec, frozen=True):
    """``spec.services.<service>``."""

    replicas: int = 1
    image: ImageSpec | None = None
    resources: ResourcesSpec | None = None
    autoscaling: AutoscalingSpec = AutoscalingSpec()


class StorefrontSpec(WorkloadSpec, frozen=True):
    """``spec.storefront``: the services' settings, and ``enabled``."""

    enabled: bool = True


class ServicesSpec(_Spec, frozen=True):
    auth: WorkloadSpec = WorkloadSpec()
    product: WorkloadSpec = WorkloadSpec()
    cart: WorkloadSpec = WorkloadSpec()
    order: WorkloadSpec = WorkloadSpec()

    def of(self, service: str) -> WorkloadSpec:
        """The section of ``service`` (one of `values.SERVICES`)."""
        if service not in self.__struct_fields__:
            raise KeyError(service)
        section: WorkloadSpec = getattr(self, service)
        return section


class StorageSpec(_Spec, frozen=True):
    size: str = "1Gi"
    class_name: str = ""
    """Empty: the cluster's default StorageClass (the CRD has no default)."""


class MongodbSpec(_Spec, frozen=True):
    engine: DatabaseEngine = DATABASE_ENGINES[0]
    image: str | None = None
    """None: the operator's default image for the engine, else the charts'."""
    resources: ResourcesSpec | None = None
    storage: StorageSpec = StorageSpec()
    keep_data_on_delete: bool = True


class TlsSpec(_Spec, frozen=True):
    enabled: bool = False
    secret_name: str = ""


class IngressSpec(_Spec, frozen=True):
    enabled: bool = True
    class_name: str = "traefik"
    host: str = ""
    tls: TlsSpec = TlsSpec()
    trusted_proxies: tuple[str, ...] = ()


class IngressControllerSpec(_Spec, frozen=True):
    namespace: str = "traefik"
    pod_labels: dict[str, str] = msgspec.field(
        default_factory=lambda: {"app.kubernetes.io/name": "traefik"}
    )


class NetworkPolicySpec(_Spec, frozen=True):
    enabled: bool = True
    ingress_controller: IngressControllerSpec = msgspec.field(default_factory=IngressControllerSpec)


class TracingSpec(_Spec, frozen=True):
    otlp_endpoint: str = ""
    """Empty: tracing off."""
    sample_ratio: float = 1.0


class ObservabilitySpec(_Spec, frozen=True):
    tracing: TracingSpec = TracingSpec()


class SecretRotationSpec(_Spec, frozen=True):
    interval_minutes: int = 1440
    schedule: str | None = None
    """A cron expression; when set it is used instead of ``interval_minutes``."""
    token_lifetime_seconds: int = 900
    propagation_delay_seconds: int = 90


class VolumeClaimTargetSpec(_Spec, frozen=True):
    """``spec.backup.target.volumeClaim``: made by the operator when it does not exist, never
    owned by the Checkout nor deleted with it (the archives outlive the shop they came from)."""

    name: str = ""
    """Empty: ``<checkout>-backups``."""
    size: str = "5Gi"
    storage_class_name: str = ""


class BackupTargetSpec(_Spec, frozen=True):
    volume_claim: VolumeClaimTargetSpec = VolumeClaimTargetSpec()


class BackupSpec(_Spec, frozen=True):
    """``spec.backup``: present means backed up on ``schedule``."""

    schedule: str = "0 3 * * *"
    time_zone: str = ""
    suspend: bool = False
    retention: int = 7
    target: BackupTargetSpec = BackupTargetSpec()


class RestoreFromSpec(_Spec, frozen=True):
    """``spec.restore.from``: a CheckoutBackup (``backup``), or a claim and an archive on it."""

    backup: str = ""
    claim_name: str = ""
    archive: str = "latest"


class RestoreSpec(_Spec, frozen=True):
    """``spec.restore``: given at creation only (the CRD refuses it later), never overwrites."""

    from_: RestoreFromSpec = msgspec.field(default_factory=RestoreFromSpec, name="from")


class CheckoutSpec(_Spec, frozen=True):
    services: ServicesSpec = ServicesSpec()
    storefront: StorefrontSpec = StorefrontSpec()
    mongodb: MongodbSpec = MongodbSpec()
    ingress: IngressSpec = IngressSpec()
    network_policy: NetworkPolicySpec = msgspec.field(default_factory=NetworkPolicySpec)
    secret_rotation: SecretRotationSpec = SecretRotationSpec()
    observability: ObservabilitySpec = ObservabilitySpec()
    backup: BackupSpec | None = None
    restore: RestoreSpec | None = None


def decode_spec(raw: object) -> CheckoutSpec:
    """``raw``: a Checkout's ``spec`` as the API returns it (None: an empty spec)."""
    try:
        return msgspec.convert({} if raw is None else raw, CheckoutSpec)
    except msgspec.ValidationError as exc:
        found = _AT.fullmatch(str(exc))
        if found is None:
            raise SpecError(f"spec: {exc}") from None
        raise SpecError(f"spec{found['path']}: {found['what']}") from None
