"""The operator's ``/metrics``: scraped over HTTP from the operator running against the real API
server (what Prometheus sees as a Checkout is made Ready, has children deleted and put back, has
a keyring rotated and is deleted), and `OperatorMetrics` and the metrics settings on their own."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from checkout_operator.children import SyncReport
from checkout_operator.config import ConfigError, OperatorConfig
from checkout_operator.metrics import PHASES, ROTATION_PHASES, OperatorMetrics, timestamp
from checkout_operator.reconcile import Stopping, put_back_kinds
from checkout_operator.rotation_request import ROTATE_ANNOTATION

from tests.infra.helm import Helm
from tests.operator.cluster import Cluster, Scrape, sample_checkout, wait_until
from tests.operator.conftest import RunningOperator, run_operator
from tests.operator.test_lifecycle import REPAIR_BOUND, ready

RINGS = ("jwt", "internal")
PHASE = "checkout_operator_checkout_phase"
READY = "checkout_operator_checkout_ready"
ROTATION = "checkout_operator_rotation_phase"
REPAIRS = "checkout_operator_drift_repairs_total"
RECONCILES = "checkout_operator_reconciles_total"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def metrics_url(config: OperatorConfig) -> str:
    return f"http://127.0.0.1:{config.metrics_port}/metrics"


def scraper(url: str) -> Callable[[], Scrape | None]:
    """A scrape, or None while the endpoint does not answer yet."""

    def scrape() -> Scrape | None:
        try:
            return Scrape.of(url)
        except httpx.HTTPError:
            return None

    return scrape


def phase_is(scrape: Scrape, namespace: str, phase: str, name: str = "shop") -> bool:
    """The phase series say ``phase``: 1 for it, 0 for every other."""
    values = {p: scrape.value(PHASE, namespace=namespace, checkout=name, phase=p) for p in PHASES}
    return values == {p: 1.0 if p == phase else 0.0 for p in PHASES}


def test_a_checkouts_series_follow_its_life_and_go_with_it(
    cluster: Cluster, namespace: str, operator_config: OperatorConfig
) -> None:
    config = dataclasses.replace(operator_config, metrics_port=free_port())
    url = metrics_url(config)
    scrape = scraper(url)
    with run_operator(config, (namespace,)):
        first = wait_until(scrape, what="/metrics answering")
        assert first.value("checkout_operator_info", version=config.version) == 1.0
        cluster.create_checkout(namespace, sample_checkout())
        progressing = wait_until(
            lambda: (s := scrape()) and phase_is(s, namespace, "Progressing") and s,
            what="phase Progressing on /metrics",
        )
        assert progressing.value(READY, namespace=namespace, checkout="shop") == 0.0

        ready(cluster, namespace)
        now = wait_until(
            lambda: (
                (s := scrape())
                and s.value(READY, namespace=namespace, checkout="shop") == 1.0
                # (A status is published inside a reconcile, counted when it ends.)
                and s.total(RECONCILES, trigger="spec", result="ok") >= 1
                and s
            ),
            what="ready 1 and the spec reconcile counted on /metrics",
        )
        assert phase_is(now, namespace, "Ready")
        for ring in RINGS:
            assert {
                p: now.value(ROTATION, namespace=namespace, checkout="shop", ring=ring, phase=p)
                for p in ROTATION_PHASES
            } == {p: 1.0 if p == "idle" else 0.0 for p in ROTATION_PHASES}, ring
        assert now.total(RECONCILES, trigger="spec", result="ok") >= 1
        assert now.total("checkout_operator_reconcile_duration_seconds_count", trigger="spec") >= 1
        # The sweep looks at the Checkout every drift interval (0.5 s here).
        sweeps = now.total(RECONCILES, trigger="sweep", result="ok")
        wait_until(
            lambda: (s := scrape()) and s.total(RECONCILES, trigger="sweep") > sweeps,
            what="sweeps counted",
        )
        assert now.value(REPAIRS, namespace=namespace, checkout="shop", kind="Deployment") is None

        # A Deployment deleted is put back from its watch; a Service (no watch) by the sweep.
        # (The repair is counted inside the watch's reconcile, which is counted when it ends.)
        watched = scrape().total(RECONCILES, trigger="watch", result="ok")
        cluster.delete("Deployment", namespace, "shop-order")
        wait_until(
            lambda: (
                (s := scrape())
                and s.value(REPAIRS, namespace=namespace, checkout="shop", kind="Deployment") == 1.0
                and s.total(RECONCILES, trigger="watch", result="ok") > watched
            ),
            timeout=REPAIR_BOUND,
            what="the Deployment's repair and its watch reconcile counted",
        )
        assert cluster.get("Deployment", namespace, "shop-order") is not None
        cluster.delete("Service", namespace, "shop-product")
        wait_until(
            lambda: (
                (s := scrape())
                and s.value(REPAIRS, namespace=namespace, checkout="shop", kind="Service") == 1.0
            ),
            timeout=REPAIR_BOUND,
            what="the Service's repair counted",
        )
        assert cluster.get("Service", namespace, "shop-product") is not None
        after = Scrape.of(url)
        assert after.value(REPAIRS, namespace=namespace, checkout="shop", kind="Deployment") == 1.0
        # Back without a status: not available until a controller reports again.
        wait_until(
            lambda: (s := scrape()) and s.value(READY, namespace=namespace, checkout="shop") == 0.0,
            what="ready 0 after the Deployment came back without a status",
        )

        cluster.delete("Checkout", namespace, "shop")
        wait_until(lambda: cluster.get("Checkout", namespace, "shop") is None, what="gone")
        gone = wait_until(scrape, what="a scrape")
        assert gone.labelled(namespace=namespace) == []
        assert gone.value("checkout_operator_info", version=config.version) == 1.0
    # The endpoint stops with the operator.
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)


def test_a_failed_reconcile_is_counted_and_its_phase_shown(
    cluster: Cluster, namespace: str, start_operator: Callable[..., RunningOperator]
) -> None:
    port = free_port()
    start_operator(namespace, metrics_port=port)
    url = f"http://127.0.0.1:{port}/metrics"
    # A valid Kubernetes quantity that the service charts' schema does not accept.
    spec = sample_checkout(services={"cart": {"resources": {"requests": {"cpu": "1e3"}}}})
    cluster.create_checkout(namespace, spec)
    # The phase is published inside the reconcile, which is counted when it ends: wait for both.
    failed = wait_until(
        lambda: (
            (s := scraper(url)())
            and phase_is(s, namespace, "Failed")
            and s.total(RECONCILES, trigger="spec", result="error") >= 1
            and s
        ),
        what="phase Failed and the failed spec reconcile counted on /metrics",
    )
    assert failed.value(READY, namespace=namespace, checkout="shop") == 0.0


def test_a_completed_rotation_is_counted_per_ring(
    cluster: Cluster, namespace: str, start_operator: Callable[..., RunningOperator]
) -> None:
    port = free_port()
    # The timings of tests/operator/test_rotation.py: the internal ring rotates in seconds.
    start_operator(
        namespace,
        metrics_port=port,
        rotation_check_interval=0.2,
        rotation_poll_interval=0.2,
        rotation_margin=1.0,
        rotation_probe_timeout=1.0,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    rotation = {"intervalMinutes": 1440, "tokenLifetimeSeconds": 60, "propagationDelaySeconds": 1}
    cluster.create_checkout(namespace, sample_checkout(secretRotation=rotation))
    wait_until(
        lambda: (
            (s := scraper(url)())
            and s.value(
                ROTATION, namespace=namespace, checkout="shop", ring="internal", phase="idle"
            )
            == 1.0
            and "secretRotation" in (cluster.checkout(namespace).get("status") or {})
        ),
        what="the rings idle",
    )
    cluster.merge(
        "Checkout",
        namespace,
        "shop",
        {"metadata": {"annotations": {ROTATE_ANNOTATION: "internal"}}},
    )
    done = wait_until(
        lambda: (
            (s := scraper(url)())
            and s.value(
                "checkout_operator_rotations_completed_total",
                namespace=namespace,
                checkout="shop",
                ring="internal",
            )
            == 1.0
            and s
        ),
        timeout=30,
        what="the internal rotation counted",
    )
    assert (
        done.value(ROTATION, namespace=namespace, checkout="shop", ring="internal", phase="idle")
        == 1.0
    )
    assert (
        done.value(
            "checkout_operator_rotations_completed_total",
            namespace=namespace,
            checkout="shop",
            ring="jwt",
        )
        is None
    )


# --- on their own ------------------------------------------------------------------------------


def test_the_status_sets_the_gauges_and_forget_removes_them() -> None:
    metrics = OperatorMetrics("1.2.3")
    status: dict[str, Any] = {
        "phase": "Restoring",
        "conditions": [{"type": "Ready", "status": "False"}],
        "secretRotation": {"jwt": {"phase": "promoting"}, "schedule": "every 1440 minutes"},
        "backup": {"lastSuccessful": {"completedAt": "2026-01-02T03:04:05Z"}},
    }
    metrics.observe("a", "shop", status)
    metrics.observe(
        "b", "shop", {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}
    )
    metrics.repaired("a", "shop", ["Deployment", "Service", "Service"])
    metrics.rotation_completed("a", "shop", "jwt")
    scrape = Scrape(metrics.exposition().decode())
    assert phase_is(scrape, "a", "Restoring")
    assert scrape.value(READY, namespace="a", checkout="shop") == 0.0
    assert scrape.value(READY, namespace="b", checkout="shop") == 1.0
    promoting = {
        (ring, p)
        for ring in RINGS
        for p in ROTATION_PHASES
        if scrape.value(ROTATION, namespace="a", checkout="shop", ring=ring, phase=p) == 1.0
    }
    assert promoting == {("jwt", "promoting"), ("internal", "idle")}  # no state yet: idle
    assert scrape.value(
        "checkout_operator_backup_last_success_timestamp_seconds", namespace="a", checkout="shop"
    ) == timestamp("2026-01-02T03:04:05Z")
    assert (
        scrape.value(
            "checkout_operator_backup_last_success_timestamp_seconds",
            namespace="b",
            checkout="shop",
        )
        is None
    )  # never backed up: no series rather than 1970
    assert scrape.value(REPAIRS, namespace="a", checkout="shop", kind="Service") == 2.0
    assert (
        scrape.value(
            "checkout_operator_rotations_completed_total",
            namespace="a",
            checkout="shop",
            ring="jwt",
        )
        == 1.0
    )

    metrics.forget("a", "shop")
    metrics.forget("a", "shop")  # twice, or never seen: nothing to do
    metrics.forget("c", "never")
    left = Scrape(metrics.exposition().decode())
    assert left.labelled(namespace="a") == []
    assert left.value(READY, namespace="b", checkout="shop") == 1.0
    assert left.value("checkout_operator_info", version="1.2.3") == 1.0


def test_reconciles_are_timed_and_counted_by_trigger_and_result() -> None:
    metrics = OperatorMetrics("1")
    with metrics.reconciling("sweep"):
        pass
    with pytest.raises(RuntimeError), metrics.reconciling("spec"):
        raise RuntimeError("the API said no")
    with pytest.raises(Stopping), metrics.reconciling("watch", uncounted=(Stopping,)):
        raise Stopping("the operator is stopping")
    scrape = Scrape(metrics.exposition().decode())
    counted = {
        (t, r): scrape.value(RECONCILES, trigger=t, result=r)
        for t in ("spec", "sweep", "watch", "repair")
        for r in ("ok", "error")
    }
    assert counted == {
        **dict.fromkeys(counted, 0.0),
        ("sweep", "ok"): 1.0,
        ("spec", "error"): 1.0,
    }
    durations = "checkout_operator_reconcile_duration_seconds_count"
    assert scrape.value(durations, trigger="spec") == 1.0
    assert scrape.value(durations, trigger="watch") == 0.0


def test_what_a_sync_put_back_is_counted_by_kind() -> None:
    report = SyncReport(
        created=["Service/shop-product"],
        updated=["ConfigMap/shop-cart"],
        pruned=["Ingress/shop-auth"],
        secrets_created=["shop-jwt-keyring"],
        adopted=["Secret/shop-auth-mongodb"],
    )
    assert put_back_kinds(report) == ["Service", "ConfigMap", "Secret"]


def _charts(tmp_path: Path) -> Path:
    for chart in ("auth", "product", "cart", "order", "storefront", "backup"):
        (tmp_path / chart).mkdir()
        (tmp_path / chart / "Chart.yaml").write_text("name: x\n")
    return tmp_path


def test_the_metrics_port_setting(tmp_path: Path) -> None:
    env = {"CHECKOUT_CHARTS_DIR": str(_charts(tmp_path))}
    default = OperatorConfig.from_env(env)
    assert (default.metrics_port, default.health_port) == (8081, 8080)
    assert OperatorConfig.from_env({**env, "CHECKOUT_METRICS_PORT": "9102"}).metrics_port == 9102
    assert OperatorConfig.from_env({**env, "CHECKOUT_METRICS_PORT": "0"}).metrics_port == 0
    with pytest.raises(ConfigError, match="CHECKOUT_METRICS_PORT"):
        OperatorConfig.from_env({**env, "CHECKOUT_METRICS_PORT": "70000"})
    with pytest.raises(ConfigError, match="CHECKOUT_METRICS_PORT"):
        OperatorConfig.from_env({**env, "CHECKOUT_METRICS_PORT": "metrics"})
    with pytest.raises(ConfigError, match=r"CHECKOUT_METRICS_PORT=9000 is the health port"):
        OperatorConfig.from_env(
            {**env, "CHECKOUT_METRICS_PORT": "9000", "CHECKOUT_HEALTH_PORT": "9000"}
        )
    # Off, it clashes with nothing.
    off = OperatorConfig.from_env(
        {**env, "CHECKOUT_METRICS_PORT": "0", "CHECKOUT_HEALTH_PORT": "0"}
    )
    assert off.metrics_port == 0


def test_the_operator_chart_serves_metrics_on_its_port_and_refuses_the_health_port(
    charts: Helm,
) -> None:
    objects = charts.template("checkout-operator", {"metrics": {"port": 9102}})
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    config = OperatorConfig.from_env({**env, "CHECKOUT_CHARTS_DIR": str(charts.charts)})
    assert (config.metrics_port, config.health_port) == (9102, 8080)
    assert {"name": "metrics", "containerPort": 9102, "protocol": "TCP"} in container["ports"]
    (service,) = [o for o in objects if o["kind"] == "Service"]
    assert service["metadata"]["name"] == "shop-checkout-operator-metrics"
    assert service["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9102",
        "prometheus.io/path": "/metrics",
    }
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9102, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()

    off = charts.template("checkout-operator", {"metrics": {"port": 0}})
    assert not [o for o in off if o["kind"] == "Service"]
    (deployment,) = [o for o in off if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert [p["name"] for p in container["ports"]] == ["health"]

    clash = charts.template_text(
        "checkout-operator", {"metrics": {"port": 9000}, "healthPort": 9000}, check=False
    )
    assert clash.returncode != 0
    assert "metrics.port (9000) must differ from healthPort (9000)" in clash.stderr
