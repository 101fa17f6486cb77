"""The status of a Checkout from the state of its children (pure functions).

Conditions are replaced by type and keep their ``lastTransitionTime`` while their status holds,
so computing the same status twice gives the same document (and so no write).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .values import WORKLOADS

READY = "Ready"
SECRETS_ROTATED = "SecretsRotated"
"""Written by the rotation (`rotation_status`), kept by reconciles."""
PAUSED = "Paused"
HIBERNATED = "Hibernated"
"""Present only while the annotations of `control` ask for them (removed afterwards)."""
PHASE_PROGRESSING = "Progressing"
PHASE_READY = "Ready"
PHASE_FAILED = "Failed"
PHASE_DELETING = "Deleting"
PHASE_PAUSED = "Paused"
PHASE_HIBERNATING = "Hibernating"
PHASE_HIBERNATED = "Hibernated"
PAUSED_MESSAGE = (
    "reconciliation paused by the annotation checkout.platform.io/paused: the spec, drift and "
    "key rotation are left alone until it is removed"
)
HIBERNATED_MESSAGE = "every workload is scaled to zero; the volumes and Secrets are kept"


def available_type(workload: str) -> str:
    """``AuthAvailable``, ``ProductAvailable``, ..., ``StorefrontAvailable``."""
    return f"{workload.capitalize()}Available"


def retired_conditions(workloads: Iterable[str]) -> tuple[str, ...]:
    """The ``<X>Available`` types of the workloads not among ``workloads`` (the storefront, when
    the spec disables it): removed from the status rather than left stale."""
    wanted = set(workloads)
    return tuple(available_type(w) for w in WORKLOADS if w not in wanted)


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) else default


@dataclass(frozen=True)
class Health:
    """A workload as its Checkout's status sees it: ``problem`` when it does not serve (the
    Checkout is not Ready), else ``rolling`` while a rollout is still replacing its pods (Ready,
    but the phase stays Progressing until it is done)."""

    problem: str | None = None
    rolling: str | None = None

    @property
    def available(self) -> bool:
        return self.problem is None

    def first(self, other: Health) -> Health:
        """This one's problem, else the other's; the first rollout still running."""
        return Health(self.problem or other.problem, self.rolling or other.rolling)


def _parts(workload: Mapping[str, Any]) -> tuple[bool, int, Mapping[str, Any]]:
    """Whether its status describes its latest spec, the replicas that spec wants, its status."""
    meta, spec, status = (workload.get(k) or {} for k in ("metadata", "spec", "status"))
    current = _int(status.get("observedGeneration"), -1) >= _int(meta.get("generation"), 0)
    return current, _int(spec.get("replicas"), 1), status


def deployment_health(deployment: Mapping[str, Any] | None) -> Health:
    """A Deployment serves while it has the replicas its spec wants available, also in the
    middle of a rollout (the services roll with ``maxUnavailable: 0``); one at zero replicas
    never serves (the spec asks for at least one; hibernation has a status of its own)."""
    if deployment is None:
        return Health("its Deployment does not exist")
    current, wanted, status = _parts(deployment)
    available = _int(status.get("availableReplicas"))
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if wanted < 1:
        return Health("its Deployment is scaled to zero")
    if conditions.get("Available") != "True" or available < wanted:
        if not current:
            return Health("its Deployment's latest spec is not rolled out yet")
        return Health(f"its Deployment has {available}/{wanted} replicas available")
    if not current:
        return Health(rolling="its Deployment's latest spec is not rolled out yet")
    if (updated := _int(status.get("updatedReplicas"))) < wanted:
        return Health(rolling=f"its Deployment has {updated}/{wanted} replicas updated")
    if (replicas := _int(status.get("replicas"), wanted)) > wanted:
        return Health(rolling=f"its Deployment has {replicas - wanted} old replicas left")
    return Health()


def statefulset_health(statefulset: Mapping[str, Any] | None) -> Health:
    """The MongoDB StatefulSet serves while its replicas are ready; it is rolling out until every
    pod runs its latest revision."""
    if statefulset is None:
        return Health("its MongoDB StatefulSet does not exist")
    current, wanted, status = _parts(statefulset)
    ready = _int(status.get("readyReplicas"))
    if wanted < 1:
        return Health("its MongoDB StatefulSet is scaled to zero")
    if ready < wanted:
        if not current:
            return Health("its MongoDB StatefulSet's latest spec is not rolled out yet")
        return Health(f"its MongoDB has {ready}/{wanted} replicas ready")
    if not current:
        return Health(rolling="its MongoDB StatefulSet's latest spec is not rolled out yet")
    revision = status.get("updateRevision")
    if revision and status.get("currentRevision") not in (None, revision):
        updated = _int(status.get("updatedReplicas"))
        return Health(rolling=f"its MongoDB has {updated}/{wanted} replicas updated")
    return Health()


@dataclass(frozen=True)
class ServiceState:
    service: str
    """A workload: one of the services, or the storefront."""
    health: Health

    @property
    def problem(self) -> str | None:
        return self.health.problem

    @property
    def rolling(self) -> str | None:
        return self.health.rolling

    @property
    def available(self) -> bool:
        return self.health.available


def service_states(
    deployments: Mapping[str, Mapping[str, Any]],
    statefulsets: Mapping[str, Mapping[str, Any]],
    *,
    deployment_names: Mapping[str, str],
    statefulset_names: Mapping[str, str],
) -> list[ServiceState]:
    """One state per workload of ``deployment_names``, from live objects keyed by name; one in
    ``statefulset_names`` (a service) needs its MongoDB StatefulSet ready too."""
    states = []
    for workload, deployment in deployment_names.items():
        health = deployment_health(deployments.get(deployment))
        if workload in statefulset_names:
            health = health.first(statefulset_health(statefulsets.get(statefulset_names[workload])))
        states.append(ServiceState(workload, health))
    return states


def condition(
    type_: str, ok: bool, reason: str, message: str, generation: int | None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
    }
    if generation is not None:
        result["observedGeneration"] = generation
    return result


def find_condition(status: Mapping[str, Any] | None, type_: str) -> Mapping[str, Any] | None:
    """The condition of ``type_`` in a Checkout's status, if it has one."""
    conditions = (status or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), None)


def merge_conditions(
    existing: Iterable[Mapping[str, Any]],
    new: Iterable[Mapping[str, Any]],
    now: str,
    *,
    retired: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Replace conditions by type; other types (e.g. SecretsRotated) are kept as they are, but
    the ``retired`` types, which are removed.

    A condition whose status did not change keeps its ``lastTransitionTime``.
    """
    gone = set(retired)
    merged = {str(c.get("type")): dict(c) for c in existing if str(c.get("type")) not in gone}
    for cond in new:
        old = merged.get(str(cond["type"]))
        entry = dict(cond)
        if (
            old is not None
            and old.get("status") == cond["status"]
            and old.get("lastTransitionTime")
        ):
            entry["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            entry["lastTransitionTime"] = now
        merged[str(cond["type"])] = entry
    return sorted(merged.values(), key=lambda c: _order(str(c.get("type"))))


def _order(type_: str) -> tuple[int, str]:
    known = [READY, PAUSED, HIBERNATED, *(available_type(w) for w in WORKLOADS), SECRETS_ROTATED]
    return (known.index(type_), "") if type_ in known else (len(known), type_)


def healthy_status(
    states: list[ServiceState], *, generation: int | None, url: str | None
) -> dict[str, Any]:
    """Status fields (without conditions merged yet) for a spec that was applied.

    ``Ready`` means serving: True while every workload has its replicas available, also while a
    rollout replaces pods; the phase is ``Ready`` once no rollout is left (``Progressing`` with
    ``serving; rolling out ...`` before that), so waiting for a finished rollout is waiting for
    the phase."""
    waiting = [s for s in states if not s.available]
    rolling = [s for s in states if s.available and s.rolling]
    conditions = [
        condition(
            available_type(s.service),
            s.available,
            "Available" if s.available else "NotAvailable",
            f"{s.service} is available" if s.available else f"{s.service}: {s.problem}",
            generation,
        )
        for s in states
    ]
    if waiting:
        message = "waiting for " + "; ".join(f"{s.service}: {s.problem}" for s in waiting)
        conditions.insert(0, condition(READY, False, "ServicesNotAvailable", message, generation))
        phase = PHASE_PROGRESSING
    elif rolling:
        message = "serving; rolling out " + "; ".join(f"{s.service}: {s.rolling}" for s in rolling)
        conditions.insert(0, condition(READY, True, "AllServicesAvailable", "", generation))
        phase = PHASE_PROGRESSING
    else:
        message = ""
        conditions.insert(0, condition(READY, True, "AllServicesAvailable", "", generation))
        phase = PHASE_READY
    return {
        "phase": phase,
        "observedGeneration": generation,
        "url": url or "",
        "message": message,
        "conditions": conditions,
    }


def paused_status(generation: int | None) -> dict[str, Any]:
    """Status fields of a paused Checkout: the phase and a Paused condition; the rest (the
    services' conditions, observedGeneration) stays as the last reconcile left it."""
    return {
        "phase": PHASE_PAUSED,
        "message": PAUSED_MESSAGE,
        "conditions": [condition(PAUSED, True, "Annotated", PAUSED_MESSAGE, generation)],
    }


def hibernated_status(
    workloads: Iterable[str],
    pods_left: int,
    *,
    generation: int | None,
    url: str | None,
) -> dict[str, Any]:
    """Status fields of a hibernating Checkout whose workloads were scaled to zero, with
    ``pods_left`` pods still running (their Deployments' and StatefulSets' ``status.replicas``)."""
    done = pods_left == 0
    message = HIBERNATED_MESSAGE if done else f"scaling to zero: {pods_left} pods left"
    conditions = [
        condition(READY, False, "Hibernated", message, generation),
        condition(HIBERNATED, done, "ScaledToZero" if done else "ScalingDown", message, generation),
        *(
            condition(available_type(w), False, "Hibernated", f"{w} is hibernated", generation)
            for w in workloads
        ),
    ]
    return {
        "phase": PHASE_HIBERNATED if done else PHASE_HIBERNATING,
        "observedGeneration": generation,
        "url": url or "",
        "message": message,
        "conditions": conditions,
    }


def failed_status(
    message: str, *, generation: int | None, permanent: bool, url: str | None
) -> dict[str, Any]:
    """Status for a reconcile that failed: in words, in ``message`` and the Ready condition."""
    reason = "InvalidSpec" if permanent else "ReconcileError"
    return {
        "phase": PHASE_FAILED if permanent else PHASE_PROGRESSING,
        "observedGeneration": generation,
        "url": url or "",
        "message": message,
        "conditions": [condition(READY, False, reason, message, generation)],
    }


def wanted_status(
    current: Mapping[str, Any],
    computed: Mapping[str, Any],
    now: str,
    *,
    retired: Iterable[str] = (),
) -> dict[str, Any]:
    """The fields of ``computed`` as they are to be written over ``current``: its conditions
    merged by type into the current ones (without the ``retired`` types)."""
    wanted = dict(computed)
    wanted["conditions"] = merge_conditions(
        current.get("conditions") or [], computed.get("conditions") or [], now, retired=retired
    )
    return wanted


def patch_to(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch of ``status`` taking the fields of ``wanted`` from ``current`` to what they
    are there; the fields it does not name are left as they are (the rotation's and the
    reconcile's own). None when nothing changes."""
    mine = {key: value for key, value in current.items() if key in wanted}
    return merge_patch(mine, wanted) or None


def status_patch(
    current: Mapping[str, Any],
    computed: Mapping[str, Any],
    now: str,
    *,
    retired: Iterable[str] = (),
) -> dict[str, Any] | None:
    """`patch_to` the `wanted_status` of ``computed``."""
    return patch_to(current, wanted_status(current, computed, now, retired=retired))


def merge_patch(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) taking ``current`` to ``wanted`` (fields gone become null)."""
    patch: dict[str, Any] = {key: None for key in current if key not in wanted}
    for key, value in wanted.items():
        old = current.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            sub = merge_patch(old, value)
            if sub:
                patch[key] = sub
        elif old != value:
            patch[key] = value
    return patch
