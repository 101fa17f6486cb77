"""Rotation of a Checkout's JWT keyring and internal API-key ring: the loop around the one rotation
driver (`services.keys.driver`) with the keyring Secrets as its store (see docs/rotation.md).

One kopf daemon per Checkout (registered in `handlers`) loops over `Rotator.tick`: a kopf timer's
interval is fixed when the module is imported, while a rotation wants to run again at once after a
write, every poll interval while it waits for the services, and only every
``rotation_check_interval`` when idle.

Each look reads the Checkout and its two keyring Secrets (`keyring_secret`: ring and rotation
state in one Secret, written in one patch), starts what the annotations ask for (`rotation_request`)
or the schedule makes due, asks the service pods (`pods`) which keys they have loaded while a
rotation is in progress, lets the driver take each ring's next step, and shows the outcome in the
Checkout's status (`rotation_status`) and in events. A pod that cannot be asked counts as
unreachable, and the step is then taken once ``spec.secretRotation.propagationDelaySeconds`` has
passed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf
import msgspec

from services.keys.driver import Prober, Reports, RingDriver, Step, StoredRing, presented_keys
from services.keys.report import RingName
from services.keys.rotation import RotationError, RotationPolicy, RotationState, kid_time

from .children import as_body
from .config import OperatorConfig
from .control import ControlError, control_of
from .keyring_secret import BadKeyring, SecretRingStore
from .kube import CHECKOUT, ApiError, KubeClient
from .pods import pod_targets
from .reconcile import Runtime
from .rotation_request import (
    RINGS,
    ROTATE_ANNOTATION,
    Request,
    asks_for_rotation,
    read_request,
)
from .rotation_status import RingOutcome, ring_status, rotated_condition
from .schedule import RotationSchedule, ScheduleError
from .spec import SecretRotationSpec, SpecError, decode_spec
from .status import SECRETS_ROTATED, find_condition
from .values import Names

EVENT_REASONS = {
    "promote": "KeyPromoted",
    "retire": "OldKeysRemoving",
    "done": "RotationDone",
    "failed": "RotationFailed",
}


def ring_policy(
    ring: RingName, rotation: SecretRotationSpec, config: OperatorConfig
) -> RotationPolicy:
    """The timings of a rotation started now, from ``spec.secretRotation`` and the settings."""
    delay = float(rotation.propagation_delay_seconds)
    if ring == "jwt":
        return RotationPolicy.for_jwt(
            float(rotation.token_lifetime_seconds),
            margin=config.rotation_margin,
            propagation_delay=delay,
            poll_interval=config.rotation_poll_interval,
        )
    return RotationPolicy.for_internal(
        margin=config.rotation_margin,
        propagation_delay=delay,
        poll_interval=config.rotation_poll_interval,
    )


def keep_longest_lifetime(state: RotationState, wanted: RotationPolicy) -> RotationState:
    """A token lifetime raised during a rotation lengthens the wait before the old key goes:
    auth issues tokens with the new lifetime as soon as it restarts with it."""
    policy = state.policy
    if policy is None or wanted.credential_lifetime <= policy.credential_lifetime:
        return state
    longer = msgspec.structs.replace(policy, credential_lifetime=wanted.credential_lifetime)
    return msgspec.structs.replace(state, policy=longer)


def made_at(ring: StoredRing) -> float | None:
    """When the active key was made: from its id, else the last rotation, else the Secret."""
    made = kid_time(ring.document.active)
    if made is None and ring.state.last is not None:
        made = ring.state.last.finished_at
    return made if made is not None else ring.created


@dataclass(frozen=True)
class IdleRings:
    """A Checkout's rings as a full look left them: no rotation in progress, none asked for, no
    problem. Until something changes, the next look needs no request."""

    generation: int | None
    due_at: float | None
    """When the schedule makes a ring due (the operator's clock); None: never."""
    versions: Mapping[str, str]
    """resourceVersion of each keyring Secret, by name, as read or written."""


@dataclass
class Rotator:
    """The rotation of every Checkout this operator handles."""

    runtime: Runtime
    prober: Prober
    wakers: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)
    idle: dict[tuple[str, str], IdleRings] = field(default_factory=dict)
    ticks: int = 0

    @classmethod
    def create(cls, runtime: Runtime) -> Rotator:
        return cls(runtime=runtime, prober=Prober.open(runtime.config.rotation_probe_timeout))

    @property
    def config(self) -> OperatorConfig:
        return self.runtime.config

    @property
    def kube(self) -> KubeClient:
        return self.runtime.kube

    def waker(self, namespace: str, name: str) -> asyncio.Event:
        return self.wakers.setdefault((namespace, name), asyncio.Event())

    def wake(self, namespace: str, name: str) -> None:
        self.idle.pop((namespace, name), None)
        self.waker(namespace, name).set()

    async def tick(self, namespace: str, name: str, body: Mapping[str, Any] | None = None) -> float:
        """One look at a Checkout's rings: start what is due or asked for, take the next step
        of what is in progress, write status and events. Returns when to look again.

        ``body``, the Checkout as kopf last saw it: when it and the keyring Secrets (as the drift
        sweep last listed them) are as the last look left them, nothing is in progress and
        nothing is due, the look is over without a request."""
        lock = self.runtime.lock(namespace, name)
        async with lock:
            self.runtime.check_open()
            self.ticks += 1
            quiet = self._still_idle(namespace, name, body)
            if quiet is not None:
                return quiet
            self.idle.pop((namespace, name), None)
            return await self._tick(namespace, name)

    def _still_idle(
        self, namespace: str, name: str, body: Mapping[str, Any] | None
    ) -> float | None:
        """When to look again if nothing changed since the last full look; else None."""
        idle = self.idle.get((namespace, name))
        if idle is None or body is None:
            return None
        meta = body.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        if meta.get("generation") != idle.generation or asks_for_rotation(annotations):
            return None
        for secret, version in idle.versions.items():
            seen = self.runtime.secret_versions.get((namespace, secret))
            if seen is not None and seen != version:
                return None  # changed by someone else (or listed before this operator's write)
        interval = self.config.rotation_check_interval
        if idle.due_at is None:
            return interval
        left = idle.due_at - self.config.clock()
        return min(interval, left) if left > 0 else None

    async def _tick(self, namespace: str, name: str) -> float:
        config, kube = self.config, self.kube
        checkout = await kube.get(CHECKOUT, namespace, name)
        if checkout is None or checkout["metadata"].get("deletionTimestamp"):
            return config.rotation_check_interval
        meta = checkout["metadata"]
        try:
            spec = decode_spec(checkout.get("spec")).secret_rotation
            held = control_of(checkout).holds_rotation
        except (SpecError, ControlError) as exc:  # the reconcile reports it (InvalidSpec)
            raise RotationError(str(exc)) from exc
        if held:
            # Paused, or hibernating (no pod to load a new key): nothing starts or steps, and
            # what is due or in progress goes on once the annotation is removed (it wakes this).
            return config.rotation_check_interval
        names = Names(name)
        stores = {ring: SecretRingStore.of(kube, namespace, names, ring) for ring in RINGS}
        drivers = {ring: RingDriver(store, clock=config.clock) for ring, store in stores.items()}
        rings: dict[RingName, StoredRing] = {}
        problems: dict[str, str] = {}
        for ring, store in stores.items():
            try:
                found = await store.get()
            except BadKeyring as exc:
                problems[ring] = str(exc)
                continue
            if found is None:
                return config.wait_delay  # the reconcile creates it
            rings[ring] = found
        schedule: RotationSchedule | None = None
        try:
            schedule = RotationSchedule.from_spec(spec)
        except ScheduleError as exc:
            problems["schedule"] = f"{exc}; scheduled rotation is off until it is fixed"

        body = as_body(checkout)
        annotations: Mapping[str, str] = meta.get("annotations") or {}
        request = read_request(annotations, {ring: found.view for ring, found in rings.items()})
        now = config.clock()
        started: dict[RingName, tuple[str, str]] = {}
        for ring, found in rings.items():
            rings[ring], event = self._start(
                body, drivers[ring], found, spec, request, schedule, now
            )
            if event is not None:
                started[ring] = event

        reports: Reports = {}
        if any(found.state.in_progress for found in rings.values()) and "internal" in rings:
            targets = await pod_targets(kube, namespace, name)
            reports = await self.prober.ask(targets, presented_keys(rings["internal"].document))

        outcomes: list[RingOutcome] = []
        again = config.rotation_check_interval
        for ring, found in rings.items():
            step = await self._step(body, drivers[ring], found, spec, reports, started.get(ring))
            rings[ring] = step.ring
            decision, state = step.decision, step.state
            next_at = None
            made = made_at(step.ring)
            if schedule is not None and state.phase != "failed" and made is not None:
                next_at = schedule.next_rotation(made)
            outcomes.append(RingOutcome(ring, step.ring.view, state, decision, next_at))
            if decision.check_after is not None:
                again = min(again, decision.check_after)
            elif next_at is not None:
                again = min(again, max(next_at - config.clock(), 0.0))

        for problem in request.problems:
            kopf.warn(body, reason="RotationRequestIgnored", message=problem)
        if request.present:
            await self._acknowledge(checkout, {a: annotations[a] for a in request.present})
        if again > 0:  # else the next step follows at once and publishes its own status
            # Read at the start of this tick, under the Checkout's lock: its status is as read
            # (this tick changed at most its annotations), so no second read is needed.
            await self._publish(checkout, outcomes, problems, schedule)
        settled = not (problems or request.present or request.problems) and all(
            not o.state.in_progress and (o.decision is None or o.decision.check_after is None)
            for o in outcomes
        )
        if settled and again > 0:
            due = [o.next_rotation for o in outcomes if o.next_rotation is not None]
            self.idle[(namespace, name)] = IdleRings(
                generation=meta.get("generation"),
                due_at=min(due) if due else None,
                versions={stores[ring].name: found.version for ring, found in rings.items()},
            )
        return again

    def _start(
        self,
        body: kopf.Body,
        driver: RingDriver,
        current: StoredRing,
        spec: SecretRotationSpec,
        request: Request,
        schedule: RotationSchedule | None,
        now: float,
    ) -> tuple[StoredRing, tuple[str, str] | None]:
        """``current`` with a rotation begun if one is asked for or due (in memory: the step
        that follows writes the state together with the ring), and the event that says so,
        posted once it is stored."""
        ring, state, view = current.ring, current.state, current.view
        policy = ring_policy(ring, spec, self.config)
        compromised = request.compromised.get(ring)
        if compromised:
            begun = driver.start(current, policy, compromised)
            return begun, (
                "EmergencyRotation",
                f"{ring}: removing {', '.join(compromised)} at once (tokens and callers "
                f"using them now fail); active key: {begun.state.new_kid}",
            )
        why = None
        if ring in request.rotate:
            if state.in_progress:
                kopf.info(
                    body,
                    reason="RotationRequested",
                    message=(
                        f"{ring}: a rotation to {state.new_kid} is already in progress "
                        f"({state.phase}); the request is acknowledged"
                    ),
                )
                return current, None
            why = f"asked for by {ROTATE_ANNOTATION}"
        elif schedule is not None and not state.in_progress and state.phase != "failed":
            made = made_at(current)
            if made is not None and now >= schedule.next_rotation(made):
                why = f"scheduled ({schedule.describe()})"
        if why is None:
            return current, None
        begun = driver.start(current, policy)
        return begun, (
            "RotationStarted",
            f"{ring}: rotation {why}: {begun.state.new_kid} joins verify-only, then takes "
            f"over from {view.active}; {', '.join(view.kids)} will be removed",
        )

    async def _step(
        self,
        body: kopf.Body,
        driver: RingDriver,
        current: StoredRing,
        spec: SecretRotationSpec,
        reports: Reports,
        started: tuple[str, str] | None,
    ) -> Step:
        if current.state.in_progress:
            wanted = ring_policy(current.ring, spec, self.config)
            current = dataclasses.replace(
                current, state=keep_longest_lifetime(current.state, wanted)
            )
        step = await driver.step(current, reports)
        if started is not None:
            reason, message = started
            post = kopf.warn if reason == "EmergencyRotation" else kopf.info
            post(body, reason=reason, message=message)
        decision = step.decision
        written = step.write_message()
        if decision.step == "done":  # its RotationDone event follows
            meta = body.get("metadata") or {}
            self.runtime.metrics.rotation_completed(
                str(meta.get("namespace")), str(meta.get("name")), current.ring
            )
        if decision.event:
            reason = EVENT_REASONS.get(decision.step, "RotationStep")
            post = kopf.warn if decision.step == "failed" else kopf.info
            post(body, reason=reason, message=decision.event)
        elif written is not None and step.written is not None:
            reason = "KeyAdded" if step.written.add else "KeyringWritten"
            kopf.info(body, reason=reason, message=written)
        return step

    async def _acknowledge(self, checkout: Mapping[str, Any], handled: Mapping[str, str]) -> None:
        """Remove the request annotations acted on, unless one was changed meanwhile (a new
        request, handled at the next tick). ``checkout`` as this tick read it: its first patch
        goes under that resourceVersion, and a conflict reads it again."""
        namespace, name = checkout["metadata"]["namespace"], checkout["metadata"]["name"]
        latest: Mapping[str, Any] | None = checkout
        for attempt in range(3):
            if attempt:
                latest = await self.kube.get(CHECKOUT, namespace, name)
            if latest is None:
                return
            current = latest["metadata"].get("annotations") or {}
            done = [key for key, value in handled.items() if current.get(key) == value]
            if not done:
                return
            try:
                await self.kube.merge_patch(
                    CHECKOUT,
                    namespace,
                    name,
                    {
                        "metadata": {
                            "resourceVersion": latest["metadata"]["resourceVersion"],
                            "annotations": dict.fromkeys(done),
                        }
                    },
                )
                return
            except ApiError as exc:
                # kopf writes its own annotations on the Checkout too: read again and retry.
                if exc.status != 409 or attempt == 2:
                    raise

    async def _publish(
        self,
        latest: Mapping[str, Any],
        outcomes: Sequence[RingOutcome],
        problems: Mapping[str, str],
        schedule: RotationSchedule | None,
    ) -> None:
        generation = latest["metadata"].get("generation")
        rotation: dict[str, Any] = {o.ring: ring_status(o) for o in outcomes}
        rotation["schedule"] = schedule.describe() if schedule is not None else "invalid"
        rotated = rotated_condition(outcomes, problems, schedule, generation)
        computed = {"secretRotation": rotation, "conditions": [rotated]}
        was = find_condition(latest.get("status"), SECRETS_ROTATED)
        # The reconcile's writer: the rotation's status has no phase, so no phase event.
        if not await self.runtime.publish(latest, computed):
            return
        if rotated["reason"] in ("InvalidSchedule", "InvalidKeyring", "PropagationOverdue") and (
            was is None or was.get("reason") != rotated["reason"]
        ):
            kopf.warn(as_body(latest), reason=rotated["reason"], message=rotated["message"])
