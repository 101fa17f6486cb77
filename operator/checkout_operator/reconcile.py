"""One reconcile of one Checkout: secrets, render, apply, prune, status; and its deletion.

Called by the create/update/resume handlers, by the drift daemon and (status only) by the
watchers of Deployments and StatefulSets. A lock per Checkout keeps them from interleaving.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from .children import Children, Owner, SyncReport, as_body
from .config import OperatorConfig
from .kube import CHECKOUT, DEPLOYMENT, STATEFULSET, ApiError, KubeClient
from .render import ChartRenderer, RenderError
from .secrets import wanted_secrets
from .status import (
    PHASE_DELETING,
    PHASE_FAILED,
    PHASE_READY,
    READY,
    failed_status,
    healthy_status,
    retired_conditions,
    service_states,
    status_patch,
)
from .values import SERVICES, Names, all_workload_values, enabled_workloads, ingress_url

PHASE_MESSAGES = {PHASE_READY: "every service is available"}


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


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Runtime:
    """What every handler shares: settings, the API client, helm, and a lock per Checkout."""

    config: OperatorConfig
    kube: KubeClient
    renderer: ChartRenderer
    children: Children
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    reconciles: int = 0
    closing: bool = False

    @classmethod
    def create(cls, config: OperatorConfig, kube: KubeClient) -> Runtime:
        renderer = ChartRenderer(config.helm_binary, config.charts_dir, timeout=config.helm_timeout)
        return cls(config=config, kube=kube, renderer=renderer, children=Children(kube))

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        self._check_open()
        return self.locks.setdefault((namespace, name), asyncio.Lock())

    def _check_open(self) -> None:
        if self.closing:
            raise Stopping("the operator is stopping")

    async def close(self) -> None:
        """Let the reconciles in flight finish, refuse new ones, then close the API client.

        kopf runs the cleanup handlers while its daemons and handlers may still be finishing.
        """
        self.closing = True
        for lock in list(self.locks.values()):
            async with lock:
                pass
        await self.kube.aclose()

    async def reconcile(self, body: Mapping[str, Any]) -> Outcome:
        meta = body["metadata"]
        return await self.reconcile_named(meta["namespace"], meta["name"])

    async def reconcile_named(self, namespace: str, name: str) -> Outcome:
        """Reconcile the Checkout ``namespace/name`` as it is now (nothing if it is going)."""
        async with self.lock(namespace, name):
            self._check_open()
            # The body kopf hands over may be older than the object: act on the latest.
            latest = await self.kube.get(CHECKOUT, namespace, name)
            if latest is None or (latest.get("metadata") or {}).get("deletionTimestamp"):
                return Outcome(SyncReport(), ready=False, message="being deleted")
            owner = Owner.of(latest)
            self.reconciles += 1
            return await self._reconcile(owner, latest)

    async def _reconcile(self, owner: Owner, body: Mapping[str, Any]) -> Outcome:
        spec = body.get("spec") or {}
        generation = body["metadata"].get("generation")
        url = ingress_url(spec)
        workloads = enabled_workloads(spec)
        try:
            values = all_workload_values(
                release=owner.name,
                namespace=owner.namespace,
                spec=spec,
                default_images=self.config.default_images,
                cluster_domain=self.config.cluster_domain,
                default_database_images=self.config.default_database_images,
                operator_namespace=self.config.namespace,
            )
            rendered = await self.renderer.render_many(
                values, release=owner.name, namespace=owner.namespace
            )
            objects = [obj for chart in values for obj in rendered[chart]]
            report = await self.children.sync(
                owner, objects, wanted_secrets(owner.name, owner.namespace, workloads)
            )
        except (RenderError, ApiError) as exc:
            message = str(exc)
            failed = failed_status(message, generation=generation, permanent=exc.permanent, url=url)
            # An error is an event once, when it first shows in the status, not every retry.
            if await self._publish(body, failed, post_phase=False):
                kopf.warn(as_body(body), reason="ReconcileFailed", message=message)
            raise ReconcileError(message, permanent=exc.permanent) from exc
        if report.changed:
            kopf.info(as_body(body), reason="Reconciled", message=report.summary())
        computed = await self._health(owner, workloads, generation=generation, url=url)
        await self._publish(body, computed, retired=retired_conditions(workloads))
        return Outcome(
            report,
            ready=computed["phase"] == PHASE_READY,
            message=computed["message"],
        )

    async def _health(
        self,
        owner: Owner,
        workloads: tuple[str, ...],
        *,
        generation: int | None,
        url: str | None,
    ) -> dict[str, Any]:
        """Status from the Deployments of ``workloads`` and the services' StatefulSets."""
        names = Names(owner.name)
        deployments = {
            d["metadata"]["name"]: d
            for d in await self.kube.list(
                DEPLOYMENT, owner.namespace, label_selector=owner.selector
            )
        }
        statefulsets = {
            s["metadata"]["name"]: s
            for s in await self.kube.list(
                STATEFULSET, owner.namespace, label_selector=owner.selector
            )
        }
        states = service_states(
            deployments,
            statefulsets,
            deployment_names={w: names.deployment(w) for w in workloads},
            statefulset_names={s: names.statefulset(s) for s in SERVICES},
        )
        return healthy_status(states, generation=generation, url=url)

    async def _publish(
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
        patch = status_patch(current, computed, now(), retired=retired)
        if patch is None:
            return False
        meta = body["metadata"]
        await self.kube.merge_patch(
            CHECKOUT, meta["namespace"], meta["name"], {"status": patch}, subresource="status"
        )
        phase = patch.get("phase")
        if phase and post_phase:
            message = str(computed.get("message") or "") or PHASE_MESSAGES.get(phase, phase)
            kopf.info(as_body(body), reason=phase, message=message)
        return True

    async def refresh_status(self, namespace: str, name: str) -> bool:
        """Recompute the conditions from the children, e.g. when a Deployment's status moved.

        Only for a Checkout whose current spec was applied without error: otherwise the
        reconcile that is retrying owns the status.
        """
        async with self.lock(namespace, name):
            self._check_open()
            body = await self.kube.get(CHECKOUT, namespace, name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return False
            status = body.get("status") or {}
            generation = body["metadata"].get("generation")
            if status.get("observedGeneration") != generation or status.get("phase") in (
                PHASE_FAILED,
                PHASE_DELETING,
            ):
                return False
            ready = next(
                (c for c in status.get("conditions") or [] if c.get("type") == READY), None
            )
            if ready is None or ready.get("reason") in ("ReconcileError", "InvalidSpec"):
                return False
            owner = Owner.of(body)
            spec = body.get("spec") or {}
            workloads = enabled_workloads(spec)
            computed = await self._health(
                owner, workloads, generation=generation, url=ingress_url(spec)
            )
            return await self._publish(body, computed, retired=retired_conditions(workloads))

    async def delete(self, body: Mapping[str, Any]) -> list[str]:
        owner = Owner.of(body)
        keep = bool(((body.get("spec") or {}).get("mongodb") or {}).get("keepDataOnDelete", True))
        async with self.lock(owner.namespace, owner.name):
            self._check_open()
            current = await self.kube.get(CHECKOUT, owner.namespace, owner.name)
            if current is not None:
                await self._publish(
                    current,
                    {
                        "phase": PHASE_DELETING,
                        "message": "deleting children"
                        + ("; keeping the database volumes" if keep else ""),
                    },
                )
            deleted = await self.children.delete_all(owner, keep_data=keep)
        self.locks.pop((owner.namespace, owner.name), None)
        return deleted
