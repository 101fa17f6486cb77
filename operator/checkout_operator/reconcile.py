"""One reconcile of one Checkout: secrets, render, apply, prune, status; and its deletion.

Called by the create/update/resume handlers (`Runtime.reconcile`), by the drift sweep (the
safety net, `Runtime.sweep`, one loop for every Checkout) and by the watchers of Deployments and
StatefulSets (`Runtime.child_event`: status, and a child deleted or edited put back). A lock per
Checkout keeps them from interleaving.

No work without a change: what a Checkout's spec renders to is kept (`Desired`), keyed by a
digest of everything the render depends on, so helm runs again only when that changed; the drift
check and the watchers compare and apply from it without a render.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import kopf

from .children import Children, Key, Owner, SyncReport, as_body, key_of, label, owned
from .config import OperatorConfig
from .control import Control, ControlError, control_of
from .generated_secrets import wanted_secrets
from .kube import (
    CHECKOUT,
    CHECKOUT_BACKUP,
    DEPLOYMENT,
    JOB,
    MANAGED_KINDS,
    PVC,
    SECRET,
    STATEFULSET,
    ApiError,
    KubeClient,
)
from .metrics import OperatorMetrics
from .render import ChartRenderer, RenderError
from .restore import (
    RestoreInvalid,
    RestoreWaiting,
    plan_of,
    restore_done,
    restoring_status,
)
from .spec import CheckoutSpec, SpecError, decode_spec
from .status import (
    HIBERNATED,
    PAUSED,
    PHASE_DELETING,
    PHASE_FAILED,
    PHASE_PAUSED,
    PHASE_READY,
    READY,
    failed_status,
    find_condition,
    healthy_status,
    hibernated_status,
    patch_to,
    paused_status,
    retired_conditions,
    service_states,
    wanted_status,
)
from .values import (
    OWNER_LABEL,
    SERVICES,
    Names,
    Release,
    RestorePlan,
    all_workload_values,
    backup_claim_manifest,
    enabled_workloads,
    ingress_url,
)

PHASE_MESSAGES = {PHASE_READY: "every service is available"}
# The kinds of children whose watch events the operator follows (`child_event`): the drift check
# leaves them out. The others are not watched: the chart's RBAC grants no watch on them.
WATCHED_KINDS = (DEPLOYMENT, STATEFULSET)
UNWATCHED_KINDS = tuple(kind for kind in MANAGED_KINDS if kind not in WATCHED_KINDS)

log = logging.getLogger(__name__)


class Stopping(Exception):
    """The operator is shutting down: the work is left for its next start."""


class ReconcileError(Exception):
    """A reconcile failed; ``permanent`` when only a new spec can fix it."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass
class Outcome:
    report: SyncReport
    ready: bool
    message: str


@dataclass
class Desired:
    """What one Checkout's spec renders to, owned and hashed, as last applied without error."""

    digest: str
    """Of the render's inputs (`ChartRenderer.render_digest`) and the owner's uid."""
    owner: Owner
    objects: dict[Key, dict[str, Any]]
    secrets: list[dict[str, Any]]
    claims: list[dict[str, Any]] = field(default_factory=list)
    """Volume claims made when missing and never owned: the backup archives' claim."""
    jobs: list[dict[str, Any]] = field(default_factory=list)
    """Jobs made when missing, never changed (a Job's template is immutable): the restore's."""
    synced: bool = False
    """Applied in full by a reconcile that did not fail: the drift checks may act on it."""


def health_signature(workload: Mapping[str, Any]) -> str:
    """What of a Deployment or StatefulSet the conditions are computed from (`status`)."""
    return json.dumps(
        [
            (workload.get("metadata") or {}).get("generation"),
            (workload.get("spec") or {}).get("replicas"),
            workload.get("status"),
        ],
        sort_keys=True,
    )


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Runtime:
    """What every handler shares: settings, the API client, helm, a lock per Checkout, and what
    each Checkout renders to."""

    config: OperatorConfig
    kube: KubeClient
    renderer: ChartRenderer
    children: Children
    metrics: OperatorMetrics
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    desired: dict[tuple[str, str], Desired] = field(default_factory=dict)
    pending: dict[tuple[str, str], dict[Key, tuple[str, dict[str, Any]]]] = field(
        default_factory=dict
    )
    """Watch events of children not yet looked at, per Checkout: the latest per child."""
    syncs: dict[tuple[str, str], int] = field(default_factory=dict)
    """Per Checkout, how many times its children were synced: a sweep whose lists were read
    before a sync leaves that Checkout for the next sweep."""
    secret_versions: dict[tuple[str, str], str] = field(default_factory=dict)
    """resourceVersion of every owned Secret, by (namespace, name), as the last sweep saw it:
    the rotation reads a keyring again when it moved."""
    health_seen: dict[tuple[str, str], dict[Key, str]] = field(default_factory=dict)
    """Per Checkout, `health_signature` of each Deployment and StatefulSet as its status was
    last computed from."""
    controls: dict[tuple[str, str], Control | str] = field(default_factory=dict)
    """Per Checkout, its day-2 switches (`control`) as its last reconcile read them (the error,
    for a bad value): an event whose annotations say otherwise reconciles again (`switched`)."""
    list_cluster_wide: bool = True
    sweeper: asyncio.Task[None] | None = None
    reconciles: int = 0
    """Full reconciles, drift checks (one per Checkout per sweep) and children put back after a
    watch event."""
    closing: bool = False

    @classmethod
    def create(cls, config: OperatorConfig, kube: KubeClient) -> Runtime:
        renderer = ChartRenderer(
            config.helm_binary,
            config.charts_dir,
            timeout=config.helm_timeout,
            parallelism=config.helm_parallelism,
        )
        return cls(
            config=config,
            kube=kube,
            renderer=renderer,
            children=Children(kube),
            metrics=OperatorMetrics(config.version),
        )

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        self.check_open()
        return self.locks.setdefault((namespace, name), asyncio.Lock())

    def check_open(self) -> None:
        if self.closing:
            raise Stopping("the operator is stopping")

    async def close(self) -> None:
        """Let the reconciles in flight finish, refuse new ones, then close the API client.

        kopf runs the cleanup handlers while its daemons and handlers may still be finishing.
        """
        self.closing = True
        if self.sweeper is not None:
            self.sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sweeper
        for lock in list(self.locks.values()):
            async with lock:
                pass
        self.renderer.close()
        await self.kube.aclose()

    async def reconcile(self, body: Mapping[str, Any]) -> Outcome:
        meta = body["metadata"]
        return await self.reconcile_named(meta["namespace"], meta["name"])

    async def reconcile_named(self, namespace: str, name: str) -> Outcome:
        """Reconcile the Checkout ``namespace/name`` as it is now (nothing if it is going)."""
        async with self.lock(namespace, name):
            self.check_open()
            outcome = await self._reconcile_latest(namespace, name, "spec")
        return outcome or Outcome(SyncReport(), ready=False, message="being deleted")

    async def _reconcile_latest(self, namespace: str, name: str, trigger: str) -> Outcome | None:
        """Under the lock: reconcile the Checkout as it is now; None if it is gone or going.
        (The body kopf hands over may be older than the object.) ``trigger``: what asked for it
        (`metrics.TRIGGERS`)."""
        with self.metrics.reconciling(trigger, uncounted=(Stopping,)):
            latest = await self.kube.get(CHECKOUT, namespace, name)
            if latest is None or (latest.get("metadata") or {}).get("deletionTimestamp"):
                return None
            self.reconciles += 1
            return await self._reconcile(Owner.of(latest), latest)

    def switched(self, namespace: str, name: str, body: Mapping[str, Any]) -> bool:
        """Whether the day-2 annotations of ``body`` differ from what the last reconcile read
        (none yet: from no switch at all)."""
        try:
            seen: Control | str = control_of(body)
        except ControlError as exc:
            seen = str(exc)
        return self.controls.get((namespace, name), Control()) != seen

    async def _desired(
        self, owner: Owner, spec: CheckoutSpec, control: Control, restore: RestorePlan | None
    ) -> Desired:
        """What the spec renders to: kept from the last render if none of its inputs changed."""
        release = Release(
            owner.name,
            owner.namespace,
            spec,
            default_images=self.config.default_images,
            default_database_images=self.config.default_database_images,
            cluster_domain=self.config.cluster_domain,
            operator_namespace=self.config.namespace,
            hibernate=control.hibernate,
            backup_image=self.config.backup_image,
            restore=restore,
        )
        values = all_workload_values(release)
        key = (owner.namespace, owner.name)
        digest = self.renderer.render_digest(
            values, release=owner.name, namespace=owner.namespace, uid=owner.uid
        )
        kept = self.desired.get(key)
        if kept is not None and kept.digest == digest:
            return kept
        rendered = await self.renderer.render_many(
            values, release=owner.name, namespace=owner.namespace
        )
        workloads = enabled_workloads(spec)
        everything = [obj for chart in values for obj in rendered[chart]]
        objects, secrets = self.children.wanted(
            owner,
            (obj for obj in everything if obj.get("kind") != JOB.kind),
            wanted_secrets(owner.name, owner.namespace, workloads),
        )
        jobs = [owned(obj, owner) for obj in everything if obj.get("kind") == JOB.kind]
        claim = backup_claim_manifest(release)
        desired = Desired(
            digest, owner, objects, secrets, claims=[claim] if claim else [], jobs=jobs
        )
        self.desired[key] = desired
        return desired

    async def _restore_plan(
        self, body: Mapping[str, Any], spec: CheckoutSpec, url: str | None
    ) -> RestorePlan | None:
        """What ``spec.restore`` still asks to restore (`restore.plan_of`); a CheckoutBackup not
        finished yet is waited for, one that failed or is gone fails the reconcile."""
        if spec.restore is None or restore_done(body.get("status")):
            return None
        request = None
        name = spec.restore.from_.backup
        if name and not (body.get("status") or {}).get("restore", {}).get("claimName"):
            request = await self.kube.get(CHECKOUT_BACKUP, body["metadata"]["namespace"], name)
        try:
            return plan_of(spec, body.get("status"), request)
        except RestoreWaiting as exc:
            raise await self._failed(body, str(exc), permanent=False, url=url) from exc
        except RestoreInvalid as exc:
            raise await self._failed(body, str(exc), permanent=True, url=url) from exc

    async def _reconcile(self, owner: Owner, body: Mapping[str, Any]) -> Outcome:
        generation = body["metadata"].get("generation")
        key = (owner.namespace, owner.name)
        try:
            control = control_of(body)
        except ControlError as exc:
            self.controls[key] = str(exc)
            raise await self._failed(body, str(exc), permanent=True, url=None) from exc
        self.controls[key] = control
        try:
            spec = decode_spec(body.get("spec"))
        except SpecError as exc:
            raise await self._failed(body, str(exc), permanent=True, url=None) from exc
        url = ingress_url(spec)
        workloads = enabled_workloads(spec)
        if control.paused:
            return await self._paused(body, key)
        restore = await self._restore_plan(body, spec, url)
        try:
            desired = await self._desired(owner, spec, control, restore)
            desired.synced = False
            self.syncs[key] = self.syncs.get(key, 0) + 1
            await self.children.create_missing(desired.claims, PVC)
            report = await self.children.sync(owner, desired.objects, desired.secrets)
            await self.children.create_missing(desired.jobs, JOB)
            if spec.restore is not None and restore_done(body.get("status")):
                # Its outcome is in status.restore: the Job (and its pod) can go.
                await self.kube.delete(JOB, owner.namespace, Names(owner.name).restore_job)
            desired.synced = True
        except (RenderError, ApiError) as exc:
            # Until a reconcile succeeds the drift checks leave the children alone (synced is
            # False); a render that succeeded is kept for the retry.
            raise await self._failed(body, str(exc), permanent=exc.permanent, url=url) from exc
        if report.changed:
            kopf.info(as_body(body), reason="Reconciled", message=report.summary())
        if restore is not None:
            computed = restoring_status(restore, body.get("status"), generation=generation, url=url)
        else:
            computed = await self._health(
                owner, workloads, control, generation=generation, url=url, live=report.live
            )
        await self.publish(body, computed, retired=_retired(workloads, control))
        return Outcome(
            report,
            ready=computed["phase"] == PHASE_READY,
            message=computed["message"],
        )

    async def _paused(self, body: Mapping[str, Any], key: tuple[str, str]) -> Outcome:
        """Under the lock: nothing applied, and the drift checks and watchers leave the children
        alone (their last render is no longer synced) until a reconcile after the pause."""
        desired = self.desired.get(key)
        if desired is not None:
            desired.synced = False
        await self.publish(body, paused_status(body["metadata"].get("generation")))
        return Outcome(SyncReport(), ready=False, message="reconciliation paused")

    async def sweep(self) -> int:
        """The drift safety net, for every Checkout at once: the children no watch follows are
        listed (one request per kind, in every namespace, or per namespace where the operator
        may not list cluster-wide), compared with what was last applied, and what differs is put
        back, without a render. Nothing more when nothing differs. Returns the Checkouts
        compared."""
        syncs = {key: self.syncs.get(key, 0) for key, d in self.desired.items() if d.synced}
        if not syncs:
            return 0
        live = await self._unwatched_children({namespace for namespace, _ in syncs})
        for key, count in syncs.items():
            namespace, name = key
            async with self.lock(namespace, name):
                self.check_open()
                desired = self.desired.get(key)
                # Applied again since the lists were read: they may be older than the children.
                if desired is None or not desired.synced or self.syncs.get(key, 0) != count:
                    continue
                self.reconciles += 1
                self.syncs[key] = count + 1
                try:
                    with self.metrics.reconciling("sweep", uncounted=(Stopping,)):
                        report = await self.children.sync(
                            desired.owner,
                            desired.objects,
                            desired.secrets,
                            kinds=UNWATCHED_KINDS,
                            live=live.get(key, {}),
                        )
                except ApiError as exc:
                    log.warning("%s/%s: drift repair failed: %s", namespace, name, exc)
                    continue
                self.metrics.repaired(namespace, name, put_back_kinds(report))
                if report.changed:
                    log.info("%s/%s drift repaired: %s", namespace, name, report.summary())
                    kopf.info(
                        as_body(desired.owner.body),
                        reason="DriftRepaired",
                        message=report.summary(),
                    )
                    # The conditions read only Deployments and StatefulSets, which this sweep
                    # does not touch (their watch does): the status stands.
        return len(syncs)

    async def _unwatched_children(
        self, namespaces: set[str]
    ) -> dict[tuple[str, str], dict[Key, dict[str, Any]]]:
        """Every child of the kinds no watch follows, by (namespace, owner), then (kind, name);
        the Secrets' resourceVersions also go to ``secret_versions``."""
        lists: list[list[dict[str, Any]]] = []
        if self.list_cluster_wide:
            try:
                lists = await asyncio.gather(
                    *(self.kube.list(k, None, label_selector=OWNER_LABEL) for k in UNWATCHED_KINDS)
                )
            except ApiError as exc:
                if exc.status != 403:
                    raise
                # Namespaced RBAC (the chart's watchNamespaces): per namespace from now on.
                self.list_cluster_wide = False
        if not self.list_cluster_wide:
            lists = await asyncio.gather(
                *(
                    self.kube.list(k, namespace, label_selector=OWNER_LABEL)
                    for namespace in sorted(namespaces)
                    for k in UNWATCHED_KINDS
                )
            )
        found: dict[tuple[str, str], dict[Key, dict[str, Any]]] = {}
        versions: dict[tuple[str, str], str] = {}
        for item in (item for items in lists for item in items):
            meta = item["metadata"]
            owner = (meta.get("labels") or {}).get(OWNER_LABEL)
            if owner:
                found.setdefault((meta["namespace"], owner), {})[key_of(item)] = item
            if item["kind"] == SECRET.kind:
                versions[(meta["namespace"], meta["name"])] = meta["resourceVersion"]
        self.secret_versions = versions  # as of this sweep: a deleted Checkout's are forgotten
        return found

    async def _sweep_until_stopping(self) -> None:
        with contextlib.suppress(Stopping):
            await self.sweep()

    async def sweep_forever(self) -> None:
        """`sweep` every ``drift_interval`` until cancelled (the operator stops)."""
        while not self.closing:
            await asyncio.sleep(self.config.drift_interval)
            try:
                # Shielded, so a sweep in flight finishes when the operator stops; it must then
                # end quietly, as a task no one awaits any more (kopf re-raises what such a task
                # raised when it stops).
                await asyncio.shield(self._sweep_until_stopping())
            except Stopping:
                return
            except (ApiError, httpx.HTTPError) as exc:
                log.warning("drift check failed: %s", exc)
            except Exception:  # the one loop for every Checkout must not end on one surprise
                log.exception("drift check failed")

    async def child_event(
        self, namespace: str, owner: str, event: str | None, child: Mapping[str, Any]
    ) -> list[str]:
        """A watched child (Deployment or StatefulSet) changed or went: put it back if it no
        longer is what was applied, and recompute the Checkout's conditions. Returns what was
        put back.

        Events that arrive while the Checkout is busy are kept (the latest per child) and handled
        together by the first of them to get the lock, with one status refresh for all.
        """
        key = (namespace, owner)
        queued = self.pending.get(key)
        self.pending.setdefault(key, {})[(str(child["kind"]), child["metadata"]["name"])] = (
            event or "",
            dict(child),
        )
        if queued is not None:
            return []  # the one that queued first handles this one too
        async with self.lock(namespace, owner):
            self.check_open()
            events = self.pending.pop(key, {})
            desired = self.desired.get(key)
            if desired is None or not desired.synced:
                if any(kind == "DELETED" for kind, _ in events.values()):
                    # Nothing applied to put back from (e.g. just restarted): a full reconcile.
                    return await self._put_back_all(namespace, owner)
                with self.metrics.reconciling("watch", uncounted=(Stopping,)):
                    await self._refresh(namespace, owner)
                return []
            with self.metrics.reconciling("watch", uncounted=(Stopping,)):
                return await self._follow(key, desired, events)

    async def _follow(
        self,
        key: tuple[str, str],
        desired: Desired,
        events: Mapping[Key, tuple[str, Mapping[str, Any]]],
    ) -> list[str]:
        """Under the lock: `child_event` for a Checkout whose spec was applied."""
        namespace, owner = key
        repaired: list[Key] = []
        for child_key, (kind, body) in events.items():
            wanted = desired.objects.get(child_key)
            if wanted is None:
                continue  # pruned, or another's
            if kind == "DELETED" or await self.children.needs_apply(wanted, body):
                await self.children.put(wanted)
                repaired.append(child_key)
                self.metrics.repaired(namespace, owner, (child_key[0],))
        labels = [label(child_key) for child_key in repaired]
        if repaired:
            self.reconciles += 1
            kopf.info(
                as_body(desired.owner.body),
                reason="DriftRepaired",
                message="put back " + ", ".join(labels),
            )
        # The conditions come from these children's generation, replicas and status: an
        # event that moved none of them since the status was last computed (the operator's
        # own apply coming back, say) changes nothing there.
        seen = self.health_seen.get(key, {})
        if repaired or any(
            kind == "DELETED" or seen.get(child_key) != health_signature(body)
            for child_key, (kind, body) in events.items()
        ):
            await self._refresh(namespace, owner)
        return labels

    async def _put_back_all(self, namespace: str, name: str) -> list[str]:
        """Under the lock: a full reconcile to put back deleted children; those created."""
        try:
            outcome = await self._reconcile_latest(namespace, name, "repair")
        except ReconcileError as exc:
            log.warning("%s/%s: putting back a deleted child failed: %s", namespace, name, exc)
            return []
        if outcome is None:
            return []
        self.metrics.repaired(namespace, name, put_back_kinds(outcome.report))
        return outcome.report.created

    async def _failed(
        self, body: Mapping[str, Any], message: str, *, permanent: bool, url: str | None
    ) -> ReconcileError:
        """Say in the status why the reconcile failed; returns the error to raise."""
        generation = body["metadata"].get("generation")
        failed = failed_status(message, generation=generation, permanent=permanent, url=url)
        # An error is an event once, when it first shows in the status, not every retry.
        if await self.publish(body, failed, post_phase=False):
            kopf.warn(as_body(body), reason="ReconcileFailed", message=message)
        return ReconcileError(message, permanent=permanent)

    async def _health(
        self,
        owner: Owner,
        workloads: tuple[str, ...],
        control: Control,
        *,
        generation: int | None,
        url: str | None,
        live: Mapping[Key, Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Status from the Deployments of ``workloads`` and the services' StatefulSets: those in
        ``live`` (the children as a sync just left them), else listed. Hibernating: how many of
        their pods are left."""
        if live is None:
            live = await self.children.live(owner, (DEPLOYMENT, STATEFULSET))
        names = Names(owner.name)
        deployments = {n: d for (kind, n), d in live.items() if kind == DEPLOYMENT.kind}
        statefulsets = {n: s for (kind, n), s in live.items() if kind == STATEFULSET.kind}
        self.health_seen[(owner.namespace, owner.name)] = {
            **{(DEPLOYMENT.kind, name): health_signature(d) for name, d in deployments.items()},
            **{(STATEFULSET.kind, name): health_signature(s) for name, s in statefulsets.items()},
        }
        if control.hibernate:
            pods_left = sum(
                int((workload.get("status") or {}).get("replicas") or 0)
                for workload in (*deployments.values(), *statefulsets.values())
            )
            return hibernated_status(workloads, pods_left, generation=generation, url=url)
        states = service_states(
            deployments,
            statefulsets,
            deployment_names={w: names.deployment(w) for w in workloads},
            statefulset_names={s: names.statefulset(s) for s in SERVICES},
        )
        return healthy_status(states, generation=generation, url=url)

    async def publish(
        self,
        body: Mapping[str, Any],
        computed: Mapping[str, Any],
        *,
        post_phase: bool = True,
        retired: tuple[str, ...] = (),
    ) -> bool:
        """Write the status if it differs from what the object has; True if it wrote. The
        ``retired`` condition types (of workloads the spec no longer asks for) are removed.

        A change of phase is also an event, so ``kubectl describe`` tells the story.
        """
        current = body.get("status") or {}
        computed = {**computed, "operatorVersion": self.config.version}
        meta = body["metadata"]
        wanted = wanted_status(current, computed, now(), retired=retired)
        # The metrics follow the status as it is after this (written now, or found written).
        self.metrics.observe(meta["namespace"], meta["name"], {**current, **wanted})
        patch = patch_to(current, wanted)
        if patch is None:
            return False
        await self.kube.merge_patch(
            CHECKOUT, meta["namespace"], meta["name"], {"status": patch}, subresource="status"
        )
        phase = patch.get("phase")
        if phase and post_phase:
            message = str(computed.get("message") or "") or PHASE_MESSAGES.get(phase, phase)
            kopf.info(as_body(body), reason=phase, message=message)
        return True

    async def _refresh(self, namespace: str, name: str) -> bool:
        """Under the lock: recompute the conditions from the children, e.g. when a Deployment's
        status moved. Only for a Checkout whose current spec was applied without error:
        otherwise the reconcile that is retrying owns the status."""
        body = await self.kube.get(CHECKOUT, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return False
        status = body.get("status") or {}
        generation = body["metadata"].get("generation")
        if status.get("observedGeneration") != generation or status.get("phase") in (
            PHASE_FAILED,
            PHASE_DELETING,
            PHASE_PAUSED,
        ):
            return False
        ready = find_condition(status, READY)
        if ready is None or ready.get("reason") in ("ReconcileError", "InvalidSpec"):
            return False
        owner = Owner.of(body)
        try:
            spec = decode_spec(body.get("spec"))
            control = control_of(body)
        except (SpecError, ControlError):  # then the reconcile has not applied it: its status
            return False
        if control.paused:  # the reconcile that sees the annotation writes the status
            return False
        if spec.restore is not None and not restore_done(status):
            return False  # restoring: the services are held at zero, the restore's status stands
        workloads = enabled_workloads(spec)
        computed = await self._health(
            owner, workloads, control, generation=generation, url=ingress_url(spec)
        )
        return await self.publish(body, computed, retired=_retired(workloads, control))

    async def delete(self, body: Mapping[str, Any]) -> list[str]:
        owner = Owner.of(body)
        try:
            keep = decode_spec(body.get("spec")).mongodb.keep_data_on_delete
        except SpecError:
            keep = True  # a spec that cannot be read keeps the data
        async with self.lock(owner.namespace, owner.name):
            self.check_open()
            current = await self.kube.get(CHECKOUT, owner.namespace, owner.name)
            if current is not None:
                await self.publish(
                    current,
                    {
                        "phase": PHASE_DELETING,
                        "message": "deleting children"
                        + ("; keeping the database volumes" if keep else ""),
                    },
                )
            self.desired.pop((owner.namespace, owner.name), None)
            self.syncs.pop((owner.namespace, owner.name), None)
            self.health_seen.pop((owner.namespace, owner.name), None)
            self.controls.pop((owner.namespace, owner.name), None)
            deleted = await self.children.delete_all(owner, keep_data=keep)
            self.metrics.forget(owner.namespace, owner.name)
        self.locks.pop((owner.namespace, owner.name), None)
        return deleted


def put_back_kinds(report: SyncReport) -> list[str]:
    """The kind of each child a sync created or updated (Secrets made again among them): one
    entry per child put back."""
    return [
        *(entry.split("/", 1)[0] for entry in (*report.created, *report.updated)),
        *(SECRET.kind for _ in report.secrets_created),
    ]


def _retired(workloads: tuple[str, ...], control: Control) -> tuple[str, ...]:
    """The condition types a status of these workloads under ``control`` no longer has."""
    return (
        *retired_conditions(workloads),
        *((PAUSED,) if not control.paused else ()),
        *((HIBERNATED,) if not control.hibernate else ()),
    )
