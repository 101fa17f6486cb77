"""The operator's settings: read once, typed, from the environment (the chart and Dockerfile set
it) through the services' settings loader, or built directly by tests and passed in through
kopf's ``memo``."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from services.kit.settings import SettingsError, load_settings

from .spec import DATABASE_ENGINES
from .values import BACKUP, WORKLOADS

FINALIZER = "checkout.platform.io/finalizer"
PACKAGE = "checkout-platform"
FIELD_MANAGER = "checkout-operator"

AtLeastATenth = Annotated[float, Meta(ge=0.1)]
AtLeastOne = Annotated[float, Meta(ge=1)]
Port = Annotated[int, Meta(ge=0, le=65535)]
METRICS_PORT_VARIABLE = "CHECKOUT_METRICS_PORT"


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names it."""


def _env(name: str) -> Any:
    """An optional setting read from the variable ``name``; unset or empty: `OperatorConfig`'s
    default."""
    return msgspec.field(default=None, name=name)


class OperatorSettings(msgspec.Struct, kw_only=True, frozen=True):
    """The operator's environment, one field per variable (named as the chart and the image set
    them), for `load_settings`. The defaults are `OperatorConfig`'s, not restated here."""

    charts_dir: str = msgspec.field(name="CHECKOUT_CHARTS_DIR")
    helm_binary: str = msgspec.field(default="helm", name="HELM_BINARY")
    cluster_domain: str | None = _env("CHECKOUT_CLUSTER_DOMAIN")
    namespace: str | None = _env("POD_NAMESPACE")
    kubeconfig: str | None = _env("CHECKOUT_KUBECONFIG")
    drift_interval: AtLeastATenth | None = _env("CHECKOUT_DRIFT_INTERVAL_SECONDS")
    wait_delay: AtLeastATenth | None = _env("CHECKOUT_WAIT_DELAY_SECONDS")
    request_timeout: AtLeastOne | None = _env("CHECKOUT_REQUEST_TIMEOUT_SECONDS")
    watch_server_timeout: AtLeastOne | None = _env("CHECKOUT_WATCH_TIMEOUT_SECONDS")
    helm_timeout: AtLeastOne | None = _env("CHECKOUT_HELM_TIMEOUT_SECONDS")
    helm_parallelism: Annotated[int, Meta(ge=1)] | None = _env("CHECKOUT_HELM_PARALLELISM")
    rotation_check_interval: AtLeastATenth | None = _env("CHECKOUT_ROTATION_CHECK_INTERVAL_SECONDS")
    rotation_poll_interval: AtLeastATenth | None = _env("CHECKOUT_ROTATION_POLL_INTERVAL_SECONDS")
    rotation_margin: Annotated[float, Meta(ge=0)] | None = _env("CHECKOUT_ROTATION_MARGIN_SECONDS")
    rotation_probe_timeout: AtLeastATenth | None = _env("CHECKOUT_ROTATION_PROBE_TIMEOUT_SECONDS")
    version: str | None = _env("CHECKOUT_OPERATOR_VERSION")
    metrics_port: Port | None = _env(METRICS_PORT_VARIABLE)
    health_port: Port | None = _env("CHECKOUT_HEALTH_PORT")
    # The operator's default image per workload and per database engine (`default_images`).
    default_image_auth: str | None = _env("CHECKOUT_DEFAULT_IMAGE_AUTH")
    default_image_product: str | None = _env("CHECKOUT_DEFAULT_IMAGE_PRODUCT")
    default_image_cart: str | None = _env("CHECKOUT_DEFAULT_IMAGE_CART")
    default_image_order: str | None = _env("CHECKOUT_DEFAULT_IMAGE_ORDER")
    default_image_storefront: str | None = _env("CHECKOUT_DEFAULT_IMAGE_STOREFRONT")
    default_database_image_mongodb: str | None = _env("CHECKOUT_DEFAULT_DATABASE_IMAGE_MONGODB")
    default_database_image_ferretdb: str | None = _env("CHECKOUT_DEFAULT_DATABASE_IMAGE_FERRETDB")
    # The image of the backup and restore Jobs: the operator's own (it holds checkout_backup).
    backup_image: str | None = _env("CHECKOUT_BACKUP_IMAGE")

    def images(self, prefix: str, names: tuple[str, ...]) -> dict[str, str]:
        """The ``<prefix><name>`` fields that are set, by name."""
        found = {name: getattr(self, f"{prefix}{name}") for name in names}
        return {name: image for name, image in found.items() if image is not None}


@dataclass(frozen=True)
class OperatorConfig:
    """Everything the operator needs besides the API credentials."""

    charts_dir: Path
    """A copy of charts/ with every chart's file:// dependencies built."""
    helm_binary: Path
    default_images: Mapping[str, str] = field(default_factory=dict)
    """Image per service and for the storefront ("repository:tag" or "repository@sha256:...")
    when a spec names none."""
    default_database_images: Mapping[str, str] = field(default_factory=dict)
    """Image per database engine when a spec names none; an engine left out takes the service
    charts' default."""
    backup_image: str | None = None
    """The backup Jobs' image (CHECKOUT_BACKUP_IMAGE, the operator's own in its chart); None:
    the backup chart's default."""
    cluster_domain: str = "cluster.local"
    namespace: str | None = None
    """The operator's own namespace (POD_NAMESPACE): the services' NetworkPolicies let its pods
    read their key reports. None (run outside a cluster): the charts' default stands."""
    kubeconfig: Path | None = None
    """An explicit kubeconfig; otherwise the in-cluster service account, then $KUBECONFIG."""
    drift_interval: float = 60.0
    """How often every Checkout's children are listed and compared with what was applied (the
    safety net; no render). A Deployment or StatefulSet deleted or edited is put back at once,
    from its watch."""
    wait_delay: float = 10.0
    """Retry delay of the create/update handler after a failure that may pass (an API error).
    Waiting for the services to become available is driven by their watch, not retried."""
    request_timeout: float = 30.0
    connect_timeout: float = 10.0
    watch_server_timeout: float = 300.0
    """Asked of the API server per watch request; the client waits a little longer."""
    helm_timeout: float = 60.0
    helm_parallelism: int | None = None
    """helm processes at most at once; None: one per CPU (os.cpu_count())."""
    rotation_check_interval: float = 30.0
    """How often an idle Checkout's rotation schedule and annotations are looked at (a
    rotation annotation wakes it at once), and the longest sleep during a rotation."""
    rotation_poll_interval: float = 5.0
    """How often the services' key reports are asked while a rotation waits for them."""
    rotation_margin: float = 30.0
    """Added to the credential lifetime before an old key leaves its ring (clock differences,
    requests in flight and their retries)."""
    rotation_probe_timeout: float = 2.0
    """Timeout of one ``GET /internal/v1/keys`` to a service pod."""
    clock: Callable[[], float] = time.time
    """The rotation's clock (Unix time). Tests hand in one they can move forward, to cover a
    token lifetime without waiting it out; there is no setting for it."""
    field_manager: str = FIELD_MANAGER
    finalizer: str = FINALIZER
    version: str = field(default_factory=lambda: package_version())
    """Reported as ``status.operatorVersion`` of every Checkout it reconciles: the chart sets it
    (its appVersion and image), else the installed package's version."""

    metrics_port: int = 8081
    """Port of ``GET /metrics`` (Prometheus, every interface); 0: no metrics endpoint."""
    health_port: int = 8080
    """Port of kopf's liveness endpoint (the chart passes it to ``kopf run --liveness`` and
    here): only so that the metrics endpoint is never given the same one."""

    def __post_init__(self) -> None:
        if self.metrics_port and self.metrics_port == self.health_port:
            raise ConfigError(
                f"{METRICS_PORT_VARIABLE}={self.metrics_port} is the health port "
                "(CHECKOUT_HEALTH_PORT) too: give the metrics endpoint another port, or 0 for none"
            )

    @property
    def watch_client_timeout(self) -> float:
        return self.watch_server_timeout + 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        try:
            settings = load_settings(OperatorSettings, env)
        except SettingsError as exc:
            raise ConfigError(str(exc)) from None
        return cls.from_settings(settings)

    @classmethod
    def from_settings(cls, settings: OperatorSettings) -> OperatorConfig:
        charts_dir = Path(settings.charts_dir)
        missing = [w for w in (*WORKLOADS, BACKUP) if not (charts_dir / w / "Chart.yaml").is_file()]
        if missing:
            raise ConfigError(f"CHECKOUT_CHARTS_DIR={charts_dir} holds no chart for {missing}")
        # Fields of the same name carry over as they are; those left unset keep this class's
        # defaults.
        given: dict[str, Any] = {
            f.name: getattr(settings, f.name)
            for f in dataclasses.fields(cls)
            if f.name in settings.__struct_fields__ and getattr(settings, f.name) is not None
        }
        given.update(
            charts_dir=charts_dir,
            helm_binary=Path(settings.helm_binary),
            kubeconfig=Path(settings.kubeconfig) if settings.kubeconfig else None,
            default_images=settings.images("default_image_", WORKLOADS),
            default_database_images=settings.images("default_database_image_", DATABASE_ENGINES),
        )
        return cls(**given)


def package_version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:  # run from a tree that is not installed
        return "unknown"
