"""Every kopf handler of the operator, so one file shows what it watches: thin, each one call into
`reconcile.Runtime` (Checkouts, their Deployments and StatefulSets) or `rotation.Rotator` (the
keyrings' rotation, a daemon per Checkout), plus the operator's settings.

Configuration comes from ``memo.config`` when whoever starts the operator put an
`OperatorConfig` there (the tests do), else from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx
import kopf

from services.keys.rotation import RotationError

from .backups import COMPONENT_LABEL, Backups
from .config import ConfigError, OperatorConfig
from .kube import ApiError, KubeClient
from .login import client_configuration, connection_info
from .metrics import MetricsServer
from .reconcile import ReconcileError, Runtime, Stopping
from .rotation import Rotator
from .rotation_request import asks_for_rotation
from .values import GROUP, OWNER_LABEL, PLURAL, VERSION

CHECKOUTS = (GROUP, VERSION, PLURAL)
# At most this many objects handled at once (Checkouts and the children's watch events): a
# hundred Checkouts created together queue here instead of each holding memory and connections
# while helm (bounded separately, one process per CPU) is busy.
WORKER_LIMIT = 32

log = logging.getLogger(__name__)


def _config(memo: kopf.Memo) -> OperatorConfig:
    config = memo.get("config")
    if config is None:
        config = OperatorConfig.from_env()
        memo["config"] = config
    if not isinstance(config, OperatorConfig):
        raise TypeError(f"memo.config must be an OperatorConfig, not {type(config).__name__}")
    return config


def _runtime(memo: kopf.Memo) -> Runtime:
    runtime = memo.get("runtime")
    if not isinstance(runtime, Runtime):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return runtime


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    try:
        config = _config(memo)
    except ConfigError as exc:
        raise kopf.PermanentError(f"bad settings: {exc}") from exc  # the operator exits
    settings.peering.standalone = True  # one replica (the chart's Deployment uses Recreate)
    settings.persistence.finalizer = config.finalizer
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.enabled = True
    settings.posting.level = logging.INFO
    settings.posting.reporting_component = "checkout-operator"
    settings.queueing.worker_limit = WORKER_LIMIT
    # Sent as ?timeoutSeconds=, which the API server parses as an integer.
    settings.watching.server_timeout = int(config.watch_server_timeout)
    settings.watching.client_timeout = config.watch_client_timeout
    settings.watching.connect_timeout = config.connect_timeout
    # Only the Deployments and StatefulSets the operator made are watched: the API server
    # filters them, so a big cluster's other workloads never reach this process.
    settings.watching.label_selectors["apps", "deployments"] = OWNER_LABEL
    settings.watching.label_selectors["apps", "statefulsets"] = OWNER_LABEL
    # And of the Jobs, only the backups and restores of Checkouts.
    settings.watching.label_selectors["batch", "jobs"] = (
        f"{OWNER_LABEL},{COMPONENT_LABEL} in (backup,restore)"
    )
    # httpx (the key probes) logs every request at INFO: a line per call is noise at scale.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings.networking.request_timeout = config.request_timeout
    settings.networking.connect_timeout = config.connect_timeout
    # Exit in time for the pod's terminationGracePeriodSeconds (30 s by default).
    settings.process.ultimate_exiting_timeout = 25.0
    settings.background.instant_exit_timeout = 0.1

    kube = KubeClient(
        client_configuration(config),
        field_manager=config.field_manager,
        request_timeout=config.request_timeout,
        connect_timeout=config.connect_timeout,
    )
    runtime = Runtime.create(config, kube)
    memo["runtime"] = runtime
    if config.metrics_port:
        try:
            memo["metrics_server"] = await MetricsServer.start(runtime.metrics, config.metrics_port)
        except OSError as exc:  # the port is taken: say which, and exit
            await kube.aclose()
            raise kopf.PermanentError(
                f"CHECKOUT_METRICS_PORT={config.metrics_port}: cannot serve metrics: {exc}"
            ) from exc
    # In the operator's memo before the first Checkout is seen: kopf hands each Checkout's
    # handlers a shallow copy of it.
    memo["rotator"] = Rotator.create(runtime)
    memo["backups"] = Backups(kube, runtime)


@kopf.on.login()
def login(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf's credentials, loaded again on each login (kopf logs in again after a 401)."""
    return connection_info(client_configuration(_config(memo)), settings)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    runtime = memo.get("runtime")
    server = memo.get("metrics_server")
    if isinstance(server, MetricsServer):
        await server.close()
    if isinstance(runtime, Runtime):
        await runtime.close()  # after the reconciles and rotation ticks in flight
        logger.info("API client closed after %d reconciles", runtime.reconciles)
    rotator = memo.get("rotator")
    if isinstance(rotator, Rotator):
        await rotator.prober.aclose()


@kopf.on.probe(id="reconciles")
def reconciles(memo: kopf.Memo, **_: Any) -> int:
    """Reported by the liveness endpoint beside kopf's own checks."""
    runtime = memo.get("runtime")
    return runtime.reconciles if isinstance(runtime, Runtime) else 0


@kopf.on.resume(*CHECKOUTS)
@kopf.on.create(*CHECKOUTS)
@kopf.on.update(*CHECKOUTS, field="spec")
async def reconcile(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Apply the spec. Done once applied: the services becoming available is followed by the
    watch on their Deployments and StatefulSets (`child_changed`), not by retrying this."""
    runtime = _runtime(memo)
    if runtime.sweeper is None:
        # One drift sweep for every Checkout (a daemon each would list each one's children
        # apart), started from a handler: its events need the context kopf gives handlers.
        runtime.sweeper = asyncio.create_task(runtime.sweep_forever())
    try:
        outcome = await runtime.reconcile(body)
    except Stopping as exc:
        raise kopf.TemporaryError(str(exc), delay=runtime.config.wait_delay) from exc
    except ReconcileError as exc:
        if exc.permanent:
            raise kopf.PermanentError(str(exc)) from exc
        raise kopf.TemporaryError(str(exc), delay=runtime.config.wait_delay) from exc
    # Not the object logger: kopf would post every line of it as an event.
    where = f"{body.meta.namespace}/{body.meta.name}"
    log.info("%s reconciled: %s", where, outcome.report.summary())
    if not outcome.ready:
        log.info("%s %s", where, outcome.message)


# kopf leaves annotations under the operator's own prefix out of the diffs its update handlers
# see (it keeps its progress there), so the day-2 switches are followed on every event instead.
@kopf.on.event(*CHECKOUTS, id="day2-switches")
async def switched(
    type: str | None,  # kopf passes the watch event type by this name
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """The paused or hibernate annotation (`control`) changed since the last reconcile: one
    more, and a rotation held by it looks again at once."""
    runtime = memo.get("runtime")
    namespace, name = body.meta.namespace, body.meta.name
    if type == "DELETED" or body.meta.get("deletionTimestamp") or not isinstance(runtime, Runtime):
        return
    if not namespace or not name or not runtime.switched(namespace, name, body):
        return
    rotator = memo.get("rotator")
    if isinstance(rotator, Rotator):
        rotator.wake(namespace, name)
    try:
        outcome = await runtime.reconcile(body)
    except Stopping:
        return
    except ReconcileError as exc:  # in the status already; the next event tries again
        logger.warning("day-2 switch: %s", exc)
        return
    log.info("%s/%s switched: %s", namespace, name, outcome.message or outcome.report.summary())


@kopf.on.delete(*CHECKOUTS)
async def delete(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    try:
        deleted = await _runtime(memo).delete(body)
    except Stopping as exc:
        raise kopf.TemporaryError(str(exc), delay=1) from exc
    logger.info("deleted %d children: %s", len(deleted), ", ".join(deleted) or "none")


@kopf.on.event("apps", "v1", "deployments", labels={OWNER_LABEL: kopf.PRESENT})
@kopf.on.event("apps", "v1", "statefulsets", labels={OWNER_LABEL: kopf.PRESENT})
async def child_changed(
    type: str | None,  # kopf passes the watch event type by this name
    body: kopf.Body,
    namespace: str | None,
    labels: kopf.Labels,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """A service's Deployment or StatefulSet moved: its Checkout's conditions may have too; one
    deleted, or edited in a field the operator sets, is put back at once."""
    owner = labels.get(OWNER_LABEL)
    if not namespace or not owner:
        return
    runtime = _runtime(memo)
    with contextlib.suppress(Stopping):
        try:
            repaired = await runtime.child_event(namespace, owner, type, body)
        except (ReconcileError, ApiError) as exc:
            logger.warning("putting back or following a child failed: %s", exc)
            return
        if repaired:
            log.info("%s/%s put back %s", namespace, owner, ", ".join(repaired))


# --- backups (`backups.Backups`) -------------------------------------------------------------


def _backups(memo: kopf.Memo) -> Backups:
    backups = memo.get("backups")
    if not isinstance(backups, Backups):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return backups


@kopf.on.event("batch", "v1", "jobs", labels={OWNER_LABEL: kopf.PRESENT, COMPONENT_LABEL: "backup"})
async def backup_job_changed(
    type: str | None,  # kopf passes the watch event type by this name
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """A backup Job (scheduled or asked for) moved: once it finished, its outcome goes to the
    Checkout's status.backup and BackupFailed condition, and to its CheckoutBackup."""
    if type == "DELETED":
        return
    with contextlib.suppress(Stopping):
        try:
            outcome = await _backups(memo).job_changed(body)
        except ApiError as exc:
            logger.warning("recording the backup's outcome failed: %s", exc)
            return
    if outcome is not None:
        log.info("backup %s: %s", outcome.job, "succeeded" if outcome.succeeded else outcome.error)


@kopf.on.event(
    "batch", "v1", "jobs", labels={OWNER_LABEL: kopf.PRESENT, COMPONENT_LABEL: "restore"}
)
async def restore_job_changed(
    type: str | None,  # kopf passes the watch event type by this name
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """The restore Job of a Checkout with spec.restore moved: once it finished, its outcome goes
    to status.restore and a reconcile starts the services (or says the restore failed)."""
    if type == "DELETED":
        return
    with contextlib.suppress(Stopping):
        try:
            outcome = await _backups(memo).restore_job_changed(body)
            if outcome is None:
                return
            log.info(
                "restore %s: %s", outcome.job, "succeeded" if outcome.succeeded else outcome.error
            )
            await _runtime(memo).reconcile_named(
                body.meta.namespace or "", body.meta.labels[OWNER_LABEL]
            )
        except (ReconcileError, ApiError) as exc:
            logger.warning("recording the restore's outcome failed: %s", exc)


@kopf.on.resume(GROUP, VERSION, "checkoutbackups")
@kopf.on.create(GROUP, VERSION, "checkoutbackups")
async def backup_requested(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """A CheckoutBackup: one backup of its Checkout now, as a Job from the backup CronJob."""
    logger.info("backup request: %s", await _backups(memo).requested(body))


# --- the keyrings' rotation (`rotation.Rotator`) -------------------------------------------


def _rotator(memo: kopf.Memo) -> Rotator:
    rotator = memo.get("rotator")
    if not isinstance(rotator, Rotator):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return rotator


# Cancelled at once when the operator stops or the Checkout goes: a tick already started is
# shielded and finishes under the Checkout's lock (the cleanup handler waits for it), and
# whatever it did not get to is resumed by the next operator from the Secrets' state.
@kopf.daemon(*CHECKOUTS, id="rotate-secrets", cancellation_timeout=0.0, backoff=5.0)
async def rotate_secrets(
    stopped: kopf.DaemonStopped,
    body: kopf.Body,
    namespace: str | None,
    name: str | None,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Rotate the Checkout's keyrings on its schedule and on request."""
    if not namespace or not name:
        return
    rotator = _rotator(memo)
    waker = rotator.waker(namespace, name)
    last_error = ""
    while not stopped:
        waker.clear()
        try:
            delay = await asyncio.shield(rotator.tick(namespace, name, body))
        except Stopping:
            break
        except (ApiError, httpx.HTTPError, RotationError) as exc:
            # Logged once, not every retry; a conflict the driver could not settle by reading
            # the Secret again (another writer moved its state on) is read again next time.
            if str(exc) != last_error:
                logger.warning("secret rotation: %s", exc)
            last_error = str(exc)
            delay = rotator.config.wait_delay
        else:
            last_error = ""
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waker.wait(), timeout=delay)
    rotator.wakers.pop((namespace, name), None)
    rotator.idle.pop((namespace, name), None)


@kopf.on.event(
    *CHECKOUTS,
    id="rotation-requested",
    when=lambda annotations, **_: asks_for_rotation(annotations),
)
async def rotation_requested(
    namespace: str | None, name: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """An annotation asks for a rotation: wake the Checkout's rotation loop now."""
    rotator = memo.get("rotator")
    if namespace and name and isinstance(rotator, Rotator):
        rotator.wake(namespace, name)
