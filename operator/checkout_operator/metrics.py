"""The operator's Prometheus metrics (`OperatorMetrics`) and the ``/metrics`` endpoint that serves
them (`MetricsServer`).

Each operator has its own registry, so tests can run several operators in one process. The
per-Checkout series are set from the status the operator writes (`OperatorMetrics.observe`,
called by `reconcile.Runtime.publish`, the one status writer), so they say what ``kubectl get
checkouts`` says; they are removed when the Checkout is deleted (`OperatorMetrics.forget`).
The series and their labels are listed in docs/operator.md ("Metrics"); the alert rules of the
chart select them by these names.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
import typing
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics import MetricWrapperBase

from services.keys.rotation import Phase as RotationPhase

from .restore import PHASE_RESTORING
from .rotation_request import RINGS
from .status import (
    PHASE_DELETING,
    PHASE_FAILED,
    PHASE_HIBERNATED,
    PHASE_HIBERNATING,
    PHASE_PAUSED,
    PHASE_PROGRESSING,
    PHASE_READY,
    READY,
    find_condition,
)

PREFIX = "checkout_operator"
TRIGGERS = ("spec", "sweep", "watch", "repair")
"""What started a reconcile: ``spec`` the Checkout itself (created, changed, resumed, a day-2
switch, a restore finished); ``sweep`` one Checkout's drift check in the periodic sweep;
``watch`` watch events of its Deployments and StatefulSets (compared, put back, status);
``repair`` a full reconcile to put back a deleted Deployment or StatefulSet when nothing applied
was known yet (just after a start)."""
RESULTS = ("ok", "error")
PHASES = (
    PHASE_PROGRESSING,
    PHASE_READY,
    PHASE_FAILED,
    PHASE_DELETING,
    PHASE_PAUSED,
    PHASE_HIBERNATING,
    PHASE_HIBERNATED,
    PHASE_RESTORING,
)
"""Every ``status.phase`` of a Checkout: the phase series has one sample for each."""
ROTATION_PHASES: tuple[str, ...] = typing.get_args(RotationPhase)
"""idle, adding, promoting, retiring, emergency, failed."""
# From a reconcile that changes nothing (tens of milliseconds) to five helm renders on a busy
# node (tens of seconds).
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

log = logging.getLogger(__name__)


def timestamp(value: object) -> float | None:
    """Unix time of an RFC 3339 time as the status writes it (``2026-01-02T03:04:05Z``)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


class OperatorMetrics:
    """Every series of one operator, in a registry of its own."""

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.reconciles = Counter(
            f"{PREFIX}_reconciles",
            "Reconciles by what started them and how they ended.",
            ["trigger", "result"],
            registry=registry,
        )
        self.reconcile_duration = Histogram(
            f"{PREFIX}_reconcile_duration_seconds",
            "Time a reconcile took (under the Checkout's lock), by what started it.",
            ["trigger"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.drift_repairs = Counter(
            f"{PREFIX}_drift_repairs",
            "Children put back after they were deleted or edited by hand, by kind.",
            ["namespace", "checkout", "kind"],
            registry=registry,
        )
        self.ready = Gauge(
            f"{PREFIX}_checkout_ready",
            "1 while the Checkout's Ready condition is True, else 0.",
            ["namespace", "checkout"],
            registry=registry,
        )
        self.phase = Gauge(
            f"{PREFIX}_checkout_phase",
            "1 for the Checkout's status.phase, 0 for the other phases.",
            ["namespace", "checkout", "phase"],
            registry=registry,
        )
        self.rotation_phase = Gauge(
            f"{PREFIX}_rotation_phase",
            "1 for the phase of each keyring's rotation (idle when none), 0 for the others.",
            ["namespace", "checkout", "ring", "phase"],
            registry=registry,
        )
        self.rotations_completed = Counter(
            f"{PREFIX}_rotations_completed",
            "Keyring rotations (and emergency removals) this operator finished.",
            ["namespace", "checkout", "ring"],
            registry=registry,
        )
        self.backup_last_success = Gauge(
            f"{PREFIX}_backup_last_success_timestamp_seconds",
            "When the Checkout's last successful backup completed (status.backup), Unix time.",
            ["namespace", "checkout"],
            registry=registry,
        )
        self.info = Gauge(
            f"{PREFIX}_info", "The operator's version, as 1.", ["version"], registry=registry
        )
        self.info.labels(version).set(1)
        # Every combination from the start: a rate() of a series that appears late misses its
        # first increase.
        for trigger in TRIGGERS:
            self.reconcile_duration.labels(trigger)
            for result in RESULTS:
                self.reconciles.labels(trigger, result)
        self._series: dict[tuple[str, str], set[tuple[MetricWrapperBase, tuple[str, ...]]]] = {}
        """The labelled series of each Checkout, as made here: what `forget` removes."""

    def _child(self, metric: MetricWrapperBase, namespace: str, name: str, *labels: str) -> Any:
        values = (namespace, name, *labels)
        self._series.setdefault((namespace, name), set()).add((metric, values))
        return metric.labels(*values)

    @contextlib.contextmanager
    def reconciling(
        self, trigger: str, *, uncounted: tuple[type[BaseException], ...] = ()
    ) -> Iterator[None]:
        """Time and count the block as one reconcile started by ``trigger``; an exception is an
        error, but ``uncounted`` ones (the operator stopping) and cancellation count nothing."""
        started = time.perf_counter()
        try:
            yield
        except uncounted:
            raise
        except Exception:
            self._reconciled(trigger, "error", started)
            raise
        self._reconciled(trigger, "ok", started)

    def _reconciled(self, trigger: str, result: str, started: float) -> None:
        self.reconcile_duration.labels(trigger).observe(time.perf_counter() - started)
        self.reconciles.labels(trigger, result).inc()

    def repaired(self, namespace: str, name: str, kinds: Iterable[str]) -> None:
        """Children of these kinds (one entry per child) were put back."""
        for kind in kinds:
            self._child(self.drift_repairs, namespace, name, kind).inc()

    def rotation_completed(self, namespace: str, name: str, ring: str) -> None:
        self._child(self.rotations_completed, namespace, name, ring).inc()

    def observe(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Set the Checkout's gauges from its status (as written, or found already written)."""
        ready = find_condition(status, READY)
        self._child(self.ready, namespace, name).set(
            1 if ready is not None and ready.get("status") == "True" else 0
        )
        current = status.get("phase")
        for phase in PHASES:
            self._child(self.phase, namespace, name, phase).set(1 if phase == current else 0)
        rotation = status.get("secretRotation") or {}
        for ring in RINGS:
            ring_phase = (rotation.get(ring) or {}).get("phase") or "idle"
            for phase in ROTATION_PHASES:
                self._child(self.rotation_phase, namespace, name, ring, phase).set(
                    1 if phase == ring_phase else 0
                )
        completed = ((status.get("backup") or {}).get("lastSuccessful") or {}).get("completedAt")
        when = timestamp(completed)
        if when is not None:
            self._child(self.backup_last_success, namespace, name).set(when)

    def forget(self, namespace: str, name: str) -> None:
        """Remove every series of the Checkout (it was deleted)."""
        for metric, labels in self._series.pop((namespace, name), set()):
            with contextlib.suppress(KeyError):
                metric.remove(*labels)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """``GET /metrics`` over HTTP on ``port``, in the operator's event loop (aiohttp, which kopf
    already runs its liveness endpoint on), until `close`."""

    def __init__(self, metrics: OperatorMetrics, runner: web.AppRunner, port: int) -> None:
        self.metrics = metrics
        self.runner = runner
        self.port = port

    @classmethod
    async def start(
        cls, metrics: OperatorMetrics, port: int, host: str = "0.0.0.0"
    ) -> MetricsServer:
        async def serve(_: web.Request) -> web.Response:
            return web.Response(
                body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )

        app = web.Application()
        app.router.add_get("/metrics", serve)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        log.info("serving metrics on http://%s:%d/metrics", host, port)
        return cls(metrics, runner, port)

    async def close(self) -> None:
        await self.runner.cleanup()
