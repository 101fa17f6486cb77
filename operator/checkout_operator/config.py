"""The operator's settings: read once, typed, from the environment (the chart and Dockerfile set
it), or built directly by tests and passed in through kopf's ``memo``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .spec import DATABASE_ENGINES
from .values import WORKLOADS

FINALIZER = "checkout.platform.io/finalizer"
FIELD_MANAGER = "checkout-operator"


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names it."""


def _seconds(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}")
    return value


def _count(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, not {value}")
    return value


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

    @property
    def watch_client_timeout(self) -> float:
        return self.watch_server_timeout + 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env
        charts = env.get("CHECKOUT_CHARTS_DIR")
        if not charts:
            raise ConfigError("CHECKOUT_CHARTS_DIR is not set (a dependency-built copy of charts/)")
        charts_dir = Path(charts)
        missing = [w for w in WORKLOADS if not (charts_dir / w / "Chart.yaml").is_file()]
        if missing:
            raise ConfigError(f"CHECKOUT_CHARTS_DIR={charts} holds no chart for {missing}")
        helm = Path(env.get("HELM_BINARY") or "helm")
        images = {
            workload: image
            for workload in WORKLOADS
            if (image := env.get(f"CHECKOUT_DEFAULT_IMAGE_{workload.upper()}", ""))
        }
        database_images: dict[str, str] = {
            engine: image
            for engine in DATABASE_ENGINES
            if (image := env.get(f"CHECKOUT_DEFAULT_DATABASE_IMAGE_{engine.upper()}", ""))
        }
        kubeconfig = env.get("CHECKOUT_KUBECONFIG")
        return cls(
            charts_dir=charts_dir,
            helm_binary=helm,
            default_images=images,
            default_database_images=database_images,
            cluster_domain=env.get("CHECKOUT_CLUSTER_DOMAIN") or "cluster.local",
            namespace=env.get("POD_NAMESPACE") or None,
            kubeconfig=Path(kubeconfig) if kubeconfig else None,
            drift_interval=_seconds(env, "CHECKOUT_DRIFT_INTERVAL_SECONDS", 60.0, minimum=0.1),
            wait_delay=_seconds(env, "CHECKOUT_WAIT_DELAY_SECONDS", 10.0, minimum=0.1),
            request_timeout=_seconds(env, "CHECKOUT_REQUEST_TIMEOUT_SECONDS", 30.0, minimum=1),
            watch_server_timeout=_seconds(env, "CHECKOUT_WATCH_TIMEOUT_SECONDS", 300.0, minimum=1),
            helm_timeout=_seconds(env, "CHECKOUT_HELM_TIMEOUT_SECONDS", 60.0, minimum=1),
            helm_parallelism=_count(env, "CHECKOUT_HELM_PARALLELISM"),
            rotation_check_interval=_seconds(
                env, "CHECKOUT_ROTATION_CHECK_INTERVAL_SECONDS", 30.0, minimum=0.1
            ),
            rotation_poll_interval=_seconds(
                env, "CHECKOUT_ROTATION_POLL_INTERVAL_SECONDS", 5.0, minimum=0.1
            ),
            rotation_margin=_seconds(env, "CHECKOUT_ROTATION_MARGIN_SECONDS", 30.0, minimum=0),
            rotation_probe_timeout=_seconds(
                env, "CHECKOUT_ROTATION_PROBE_TIMEOUT_SECONDS", 2.0, minimum=0.1
            ),
        )
