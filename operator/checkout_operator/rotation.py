"""Rotation of a Checkout's JWT keyring and internal API-key ring, driving the pure state machine
of `services.keys.rotation` against the keyring Secrets (see docs/rotation.md).

One kopf daemon per Checkout loops over `Rotator.tick`: a kopf timer's interval is fixed when the
module is imported, while a rotation wants to run again at once after a write, every poll
interval while it waits for the services, and only every ``rotation_check_interval`` when idle.

Where the state lives: each ring's `RotationState` (JSON, key ids and times, never secrets) is the
annotation ``checkout.platform.io/rotation-state`` of the keyring Secret it governs, written in the
same request as the ring itself (a merge patch guarded by the Secret's resourceVersion). State and
ring therefore can never disagree, which is stronger than the "state first, then the ring" order
the state machine asks for; they go together when the Secret goes, and a restarted operator reads
both back and resumes. The Checkout's status only shows the state.

Requests, both annotations on the Checkout, removed once acted on:

- ``checkout.platform.io/rotate: jwt | internal | all`` - rotate now;
- ``checkout.platform.io/rotate-emergency: <kid>[,<kid>...]`` - remove compromised keys at once.

Propagation is confirmed from ``GET /internal/v1/keys`` of every service pod (found by the
charts' labels, asked at its IP with the internal API key); a pod that cannot be asked counts as
unreachable, and the step is then taken once ``spec.secretRotation.propagationDelaySeconds``
has passed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import calendar
import contextlib
import datetime
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import kopf
import msgspec

from services.keys.keyring import KeyringDocument, KeyringError, generate_key, parse_keyring
from services.keys.report import (
    INTERNAL_KEY_HEADER,
    KEYS_PATH,
    KeyReport,
    RingName,
    RingSeen,
    decode_key_report,
)
from services.keys.rotation import (
    Decision,
    KeyIdReused,
    RingView,
    RotationError,
    RotationPolicy,
    RotationState,
    apply_layout,
    new_state,
    plan_next,
    start_emergency,
    start_rotation,
)

from .children import as_body
from .config import OperatorConfig
from .kube import CHECKOUT, SECRET, ApiError, Kind, KubeClient
from .reconcile import Runtime, Stopping
from .reconcile import now as timestamp
from .schedule import RotationSchedule, ScheduleError
from .spec import SecretRotationSpec, SpecError, decode_spec
from .status import SECRETS_ROTATED, condition, merge_conditions
from .values import GROUP, PLURAL, SERVICES, VERSION, Names

CHECKOUTS = (GROUP, VERSION, PLURAL)
RINGS: tuple[RingName, ...] = ("jwt", "internal")
ROTATE_ANNOTATION = f"{GROUP}/rotate"
EMERGENCY_ANNOTATION = f"{GROUP}/rotate-emergency"
STATE_ANNOTATION = f"{GROUP}/rotation-state"
KEYRING_KEY = "keyring.json"
JWT_LEEWAY_SECONDS = 5.0  # the verifiers' leeway (services.kit.tokens)
DEFAULT_SERVICE_PORT = 8000
POD = Kind("v1", "Pod", "pods")
_KID_TIME = re.compile(r"^[a-z]+-(\d{8}T\d{6}Z)-")
_COUNTDOWN = re.compile(r"\s*\(\d+s left\)$")

EVENT_REASONS = {
    "promote": "KeyPromoted",
    "retire": "OldKeysRemoving",
    "done": "RotationDone",
    "failed": "RotationFailed",
}


def iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kid_time(kid: str) -> float | None:
    """When a key id made by `make_kid` was made; None for an id in another format."""
    found = _KID_TIME.match(kid)
    if not found:
        return None
    return float(calendar.timegm(time.strptime(found[1], "%Y%m%dT%H%M%SZ")))


def secret_name(names: Names, ring: RingName) -> str:
    return names.jwt_keyring if ring == "jwt" else names.internal_keyring


def ring_policy(
    ring: RingName, rotation: SecretRotationSpec, config: OperatorConfig
) -> RotationPolicy:
    """The timings of a rotation started now, from ``spec.secretRotation`` and the settings."""
    delay = float(rotation.propagation_delay_seconds)
    if ring == "jwt":
        return RotationPolicy.for_jwt(
            float(rotation.token_lifetime_seconds),
            leeway_seconds=JWT_LEEWAY_SECONDS,
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


@dataclass(frozen=True)
class Request:
    """What the annotations on the Checkout ask for."""

    rotate: frozenset[RingName] = frozenset()
    compromised: Mapping[RingName, tuple[str, ...]] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    present: tuple[str, ...] = ()
    """The annotations to remove once acted on."""


def read_request(annotations: Mapping[str, str], views: Mapping[RingName, RingView]) -> Request:
    present = tuple(a for a in (ROTATE_ANNOTATION, EMERGENCY_ANNOTATION) if a in annotations)
    problems: list[str] = []
    rotate: set[RingName] = set()
    value = annotations.get(ROTATE_ANNOTATION)
    if value is not None:
        word = value.strip().lower()
        if word in ("jwt", "internal"):
            rotate.add("jwt" if word == "jwt" else "internal")
        elif word in ("all", "true", ""):
            rotate.update(RINGS)
        else:
            problems.append(
                f"{ROTATE_ANNOTATION}={value!r} is not one of jwt, internal, all; ignored"
            )
    compromised: dict[RingName, list[str]] = {}
    kids = annotations.get(EMERGENCY_ANNOTATION)
    if kids is not None:
        for kid in (k.strip() for k in kids.split(",")):
            if not kid:
                continue
            ring = next((r for r, view in views.items() if kid in view.kids), None)
            if ring is None:
                problems.append(f"{EMERGENCY_ANNOTATION}: {kid} is in neither keyring; ignored")
            else:
                compromised.setdefault(ring, []).append(kid)
    return Request(
        rotate=frozenset(rotate),
        compromised={ring: tuple(kids) for ring, kids in compromised.items()},
        problems=tuple(problems),
        present=present,
    )


@dataclass
class RingRecord:
    """One keyring Secret as read: its document, its rotation state, its resourceVersion."""

    ring: RingName
    name: str
    namespace: str
    resource_version: str
    created: float | None
    document: KeyringDocument
    state: RotationState
    stored: bytes | None
    events: list[tuple[str, str]] = field(default_factory=list)
    """(reason, message) of a rotation started in this tick, posted once its state is saved."""

    @property
    def view(self) -> RingView:
        return RingView.of(self.document)

    def made_at(self) -> float | None:
        """When the active key was made: from its id, else the last rotation, else the Secret."""
        made = kid_time(self.document.active)
        if made is None and self.state.last is not None:
            made = self.state.last.finished_at
        return made if made is not None else self.created


class BadKeyring(Exception):
    pass


def _created(meta: Mapping[str, Any]) -> float | None:
    stamp = meta.get("creationTimestamp")
    if not isinstance(stamp, str):
        return None
    parsed = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def record_of(ring: RingName, secret: Mapping[str, Any]) -> RingRecord:
    """The ring in a keyring Secret, checked as a service checks it."""
    meta = secret.get("metadata") or {}
    encoded = (secret.get("data") or {}).get(KEYRING_KEY)
    if not isinstance(encoded, str):
        raise BadKeyring(f"Secret {meta.get('name')} has no {KEYRING_KEY}")
    try:
        raw = base64.b64decode(encoded, validate=True)
        parse_keyring(raw)
        document = msgspec.json.decode(raw, type=KeyringDocument)
    except (binascii.Error, KeyringError, msgspec.DecodeError) as exc:
        raise BadKeyring(f"Secret {meta.get('name')}: {exc}") from exc
    stored_text = (meta.get("annotations") or {}).get(STATE_ANNOTATION)
    stored = stored_text.encode() if isinstance(stored_text, str) else None
    try:
        state = RotationState.from_json(stored) if stored else new_state(ring)
    except msgspec.DecodeError as exc:
        raise BadKeyring(f"Secret {meta.get('name')}: bad {STATE_ANNOTATION}: {exc}") from exc
    if state.ring != ring:
        raise BadKeyring(f"Secret {meta.get('name')} holds the state of the {state.ring} ring")
    return RingRecord(
        ring=ring,
        name=str(meta.get("name")),
        namespace=str(meta.get("namespace")),
        resource_version=str(meta.get("resourceVersion")),
        created=_created(meta),
        document=document,
        state=state,
        stored=stored,
    )


def secret_patch(
    record: RingRecord, state: RotationState, document: KeyringDocument | None
) -> dict[str, Any]:
    """State and (when it changes) ring in one merge patch, refused if the Secret moved on."""
    patch: dict[str, Any] = {
        "metadata": {
            "resourceVersion": record.resource_version,
            "annotations": {STATE_ANNOTATION: state.to_json().decode()},
        }
    }
    if document is not None:
        data = msgspec.json.encode(document)
        parse_keyring(data)  # never write a ring a service would refuse
        patch["data"] = {KEYRING_KEY: base64.b64encode(data).decode("ascii")}
    return patch


# --- reports -------------------------------------------------------------------------------


def pod_selector(release: str) -> str:
    """The service pods of one Checkout, by the labels the charts give them: only the four
    services (``SERVICES``) hold keyrings; the storefront's pods have none to report."""
    return (
        f"app.kubernetes.io/instance={release},app.kubernetes.io/component=api,"
        f"app.kubernetes.io/name in ({','.join(SERVICES)})"
    )


def pod_url(pod: Mapping[str, Any]) -> str | None:
    """``http://<podIP>:<http port>`` of a running pod; None if it cannot be asked now."""
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if status.get("phase") != "Running" or not isinstance(ip, str) or not ip:
        return None
    port = DEFAULT_SERVICE_PORT
    for container in (pod.get("spec") or {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == "http" and isinstance(declared.get("containerPort"), int):
                port = declared["containerPort"]
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}"


def refused(pod: str) -> KeyReport:
    """A pod that answers but accepts no key of the internal ring: it holds neither ring."""
    return KeyReport(service=pod, jwt=RingSeen(active=None), internal=RingSeen(active=None))


@dataclass
class Prober:
    """Asks every service pod which keys it has loaded."""

    client: httpx.AsyncClient

    async def one(self, url: str, pod: str, keys: Sequence[str]) -> KeyReport | None:
        """The pod's report; None if it cannot be reached. The internal ring's active key is
        presented first, then the others (while that ring itself is rotated)."""
        for key in keys:
            try:
                response = await self.client.get(
                    url + KEYS_PATH, headers={INTERNAL_KEY_HEADER: key}
                )
            except httpx.HTTPError:
                return None
            if response.status_code == 401:
                continue
            if response.status_code != 200:
                return None
            try:
                return decode_key_report(response.content)
            except msgspec.DecodeError:
                return None
        return refused(pod) if keys else None

    async def reports(
        self, kube: KubeClient, namespace: str, release: str, internal: KeyringDocument
    ) -> dict[str, KeyReport | None]:
        pods = await kube.list(POD, namespace, label_selector=pod_selector(release))
        keys = [
            entry.secret for entry in sorted(internal.keys, key=lambda e: e.kid != internal.active)
        ]
        live = [
            pod
            for pod in pods
            if not (pod.get("metadata") or {}).get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        names = [str(pod["metadata"]["name"]) for pod in live]

        async def ask(pod: Mapping[str, Any], name: str) -> KeyReport | None:
            url = pod_url(pod)
            return None if url is None else await self.one(url, name, keys)

        found = await asyncio.gather(
            *(ask(pod, name) for pod, name in zip(live, names, strict=True))
        )
        return dict(zip(names, found, strict=True))


def ring_reports(
    reports: Mapping[str, KeyReport | None], ring: RingName
) -> dict[str, RingSeen | None]:
    return {pod: None if report is None else report.ring(ring) for pod, report in reports.items()}


# --- status --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RingOutcome:
    """One ring after a tick, as the status shows it."""

    ring: RingName
    view: RingView
    state: RotationState
    decision: Decision | None
    next_rotation: float | None


def ring_status(outcome: RingOutcome) -> dict[str, Any]:
    state, decision = outcome.state, outcome.decision
    entry: dict[str, Any] = {
        "activeKeyId": outcome.view.active,
        "keyIds": list(outcome.view.kids),
        "phase": state.phase,
    }
    if state.in_progress:
        entry["newKeyId"] = state.new_kid
        entry["startedAt"] = iso(state.started_at)
        step = ""
        if decision is not None and decision.waiting_for:
            step = "waiting for " + _COUNTDOWN.sub("", decision.waiting_for)
        entry["step"] = step or state.phase
        policy = state.policy
        if state.phase == "promoting" and state.confirmed_at is not None and policy is not None:
            entry["waitUntil"] = iso(
                state.confirmed_at + policy.credential_lifetime + policy.margin
            )
    if state.last is not None:
        entry["lastRotation"] = iso(state.last.finished_at)
        entry["lastConfirmedBy"] = state.last.confirmed_by
        if state.last.emergency:
            entry["lastWasEmergency"] = True
    if state.rotations:
        entry["rotations"] = state.rotations
    if state.error:
        entry["error"] = state.error
    if outcome.next_rotation is not None and not state.in_progress:
        entry["nextRotation"] = iso(outcome.next_rotation)
    return entry


def rotated_condition(
    outcomes: Sequence[RingOutcome],
    problems: Mapping[str, str],
    schedule: RotationSchedule | None,
    generation: int | None,
) -> dict[str, Any]:
    """``SecretsRotated``: True when every ring is idle and on schedule, else False and why."""
    reason = ""
    messages: list[str] = []
    if problems:
        reason = "InvalidSchedule" if "schedule" in problems else "InvalidKeyring"
        messages += problems.values()
    failed = [o for o in outcomes if o.state.phase == "failed"]
    overdue = [o for o in outcomes if o.decision is not None and o.decision.overdue]
    rotating = [o for o in outcomes if o.state.in_progress]
    if failed:
        reason = reason or "RotationFailed"
        messages += [f"{o.ring}: {o.state.error}" for o in failed]
    for o in rotating:
        reason = reason or ("PropagationOverdue" if o in overdue else "Rotating")
        lagging = f" (late: {', '.join(o.decision.lagging)})" if o in overdue and o.decision else ""
        messages.append(f"{o.ring}: {o.state.phase} to {o.state.new_kid}{lagging}")
    if reason:
        return condition(SECRETS_ROTATED, False, reason, "; ".join(messages), generation)
    parts = [f"{o.ring} key {o.view.active}" for o in outcomes]
    upcoming = [o.next_rotation for o in outcomes if o.next_rotation is not None]
    if upcoming and schedule is not None:
        parts.append(f"next rotation {iso(min(upcoming))} ({schedule.describe()})")
    return condition(SECRETS_ROTATED, True, "UpToDate", "; ".join(parts), generation)


def merge_patch(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch taking ``current`` to ``wanted`` (fields gone become null)."""
    patch: dict[str, Any] = {key: None for key in current if key not in wanted}
    for key, value in wanted.items():
        old = current.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            sub = merge_patch(old, value)
            if sub:
                patch[key] = sub
        elif key not in current or old != value:
            patch[key] = value
    return patch


def rotation_status_patch(
    current: Mapping[str, Any],
    rotation: Mapping[str, Any],
    rotated: Mapping[str, Any],
    now: str,
) -> dict[str, Any] | None:
    """The status merge patch for ``secretRotation`` and ``SecretsRotated``; None if unchanged."""
    patch: dict[str, Any] = {}
    sub = merge_patch(current.get("secretRotation") or {}, rotation)
    if sub:
        patch["secretRotation"] = sub
    existing = current.get("conditions") or []
    conditions = merge_conditions(existing, [rotated], now)
    if conditions != existing:
        patch["conditions"] = conditions
    return patch or None


# --- the loop ------------------------------------------------------------------------------


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
        client = httpx.AsyncClient(timeout=runtime.config.rotation_probe_timeout, trust_env=False)
        return cls(runtime=runtime, prober=Prober(client))

    async def close(self) -> None:
        """After the ticks in flight (each holds its Checkout's lock) have finished."""
        for lock in list(self.runtime.locks.values()):
            async with lock:
                pass
        await self.prober.client.aclose()

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
            if self.runtime.closing:
                raise Stopping("the operator is stopping")
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
        if meta.get("generation") != idle.generation or (
            ROTATE_ANNOTATION in annotations or EMERGENCY_ANNOTATION in annotations
        ):
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
        except SpecError as exc:  # the reconcile reports it in status (InvalidSpec)
            raise RotationError(str(exc)) from exc
        names = Names(name)
        records: dict[RingName, RingRecord] = {}
        problems: dict[str, str] = {}
        for ring in RINGS:
            secret = await kube.get(SECRET, namespace, secret_name(names, ring))
            if secret is None:
                return config.wait_delay  # the reconcile creates it
            try:
                records[ring] = record_of(ring, secret)
            except BadKeyring as exc:
                problems[ring] = str(exc)
        schedule: RotationSchedule | None = None
        try:
            schedule = RotationSchedule.from_spec(spec)
        except ScheduleError as exc:
            problems["schedule"] = f"{exc}; scheduled rotation is off until it is fixed"

        body = as_body(checkout)
        annotations: Mapping[str, str] = meta.get("annotations") or {}
        request = read_request(annotations, {ring: rec.view for ring, rec in records.items()})
        now = config.clock()
        for ring, record in records.items():
            self._start(body, ring, record, spec, request, schedule, now)

        reports: dict[str, KeyReport | None] = {}
        if any(record.state.in_progress for record in records.values()) and "internal" in records:
            reports = await self.prober.reports(kube, namespace, name, records["internal"].document)

        outcomes: list[RingOutcome] = []
        again = config.rotation_check_interval
        for ring, record in records.items():
            decision = await self._step(body, record, spec, ring_reports(reports, ring))
            state = decision.state
            next_at = None
            made = record.made_at()
            if schedule is not None and state.phase != "failed" and made is not None:
                next_at = schedule.next_rotation(made)
            outcomes.append(RingOutcome(ring, record.view, state, decision, next_at))
            if decision.check_after is not None:
                again = min(again, decision.check_after)
            elif next_at is not None:
                again = min(again, max(next_at - config.clock(), 0.0))

        for problem in request.problems:
            kopf.warn(body, reason="RotationRequestIgnored", message=problem)
        if request.present:
            await self._acknowledge(namespace, name, {a: annotations[a] for a in request.present})
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
                versions={record.name: record.resource_version for record in records.values()},
            )
        return again

    def _start(
        self,
        body: kopf.Body,
        ring: RingName,
        record: RingRecord,
        spec: SecretRotationSpec,
        request: Request,
        schedule: RotationSchedule | None,
        now: float,
    ) -> None:
        """Begin a rotation of ``record`` if it is asked for or due (in memory: the step that
        follows writes the state together with the ring)."""
        state, view = record.state, record.view
        policy = ring_policy(ring, spec, self.config)
        compromised = request.compromised.get(ring)
        if compromised:
            record.state = _with_fresh_kid(
                lambda nonce: start_emergency(state, view, now, compromised, nonce, policy)
            )
            record.events.append(
                (
                    "EmergencyRotation",
                    f"{ring}: removing {', '.join(compromised)} at once (tokens and callers "
                    f"using them now fail); active key: {record.state.new_kid}",
                )
            )
            return
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
                return
            why = f"asked for by {ROTATE_ANNOTATION}"
        elif schedule is not None and not state.in_progress and state.phase != "failed":
            made = record.made_at()
            if made is not None and now >= schedule.next_rotation(made):
                why = f"scheduled ({schedule.describe()})"
        if why is None:
            return
        record.state = _with_fresh_kid(
            lambda nonce: start_rotation(state, view, now, nonce, policy)
        )
        record.events.append(
            (
                "RotationStarted",
                f"{ring}: rotation {why}: {record.state.new_kid} joins verify-only, then takes "
                f"over from {view.active}; {', '.join(view.kids)} will be removed",
            )
        )

    async def _step(
        self,
        body: kopf.Body,
        record: RingRecord,
        spec: SecretRotationSpec,
        reports: Mapping[str, RingSeen | None],
    ) -> Decision:
        state = record.state
        if state.in_progress:
            state = keep_longest_lifetime(state, ring_policy(record.ring, spec, self.config))
        now = self.config.clock()
        decision = plan_next(state, record.view, now, reports)
        saved = decision.state
        document = None
        if decision.write is not None:
            document = apply_layout(record.document, decision.write, generate_key)
            if saved.new_kid in decision.write.add and saved.added_at is None:
                # State and ring are one write, so the state can say at once that the new key
                # is in the ring: should it vanish before the next look, the rotation fails
                # instead of making a second key under the same id.
                saved = msgspec.structs.replace(saved, added_at=now)
                decision = msgspec.structs.replace(decision, state=saved)
        changed = saved.to_json() != record.stored
        # An idle ring that never rotated has nothing worth keeping: its Secret is not touched.
        if document is not None or (changed and (record.stored or saved.phase != "idle")):
            updated = await self.kube.merge_patch(
                SECRET,
                record.namespace,
                record.name,
                secret_patch(record, saved, document),
            )
            record.resource_version = str(updated["metadata"]["resourceVersion"])
            record.stored = decision.state.to_json()
            if document is not None:
                record.document = document
        record.state = decision.state
        for reason, message in record.events:
            post = kopf.warn if reason == "EmergencyRotation" else kopf.info
            post(body, reason=reason, message=message)
        record.events.clear()
        if decision.event:
            reason = EVENT_REASONS.get(decision.step, "RotationStep")
            post = kopf.warn if decision.step == "failed" else kopf.info
            post(body, reason=reason, message=decision.event)
        elif decision.write is not None and document is not None:
            layout = decision.write
            added = f"; added {', '.join(layout.add)}" if layout.add else ""
            kopf.info(
                body,
                reason="KeyAdded" if layout.add else "KeyringWritten",
                message=(
                    f"{record.ring}: ring now {', '.join(layout.kids)} "
                    f"(active {layout.active}{added})"
                ),
            )
        return decision

    async def _acknowledge(self, namespace: str, name: str, handled: Mapping[str, str]) -> None:
        """Remove the request annotations acted on, unless one was changed meanwhile (a new
        request, handled at the next tick)."""
        for attempt in range(3):
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
        meta = latest["metadata"]
        namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
        rotation: dict[str, Any] = {o.ring: ring_status(o) for o in outcomes}
        rotation["schedule"] = schedule.describe() if schedule is not None else "invalid"
        rotated = rotated_condition(outcomes, problems, schedule, generation)
        patch = rotation_status_patch(latest.get("status") or {}, rotation, rotated, timestamp())
        if patch is None:
            return
        was = next(
            (
                c
                for c in (latest.get("status") or {}).get("conditions") or []
                if c.get("type") == SECRETS_ROTATED
            ),
            None,
        )
        await self.kube.merge_patch(
            CHECKOUT, namespace, name, {"status": patch}, subresource="status"
        )
        if rotated["reason"] in ("InvalidSchedule", "InvalidKeyring", "PropagationOverdue") and (
            was is None or was.get("reason") != rotated["reason"]
        ):
            kopf.warn(as_body(latest), reason=rotated["reason"], message=rotated["message"])


def _with_fresh_kid(start: Any) -> RotationState:
    """``start(nonce)`` with another nonce should a key id come out as one used before."""
    for _ in range(5):
        try:
            state: RotationState = start(secrets.token_hex(3))
        except KeyIdReused:
            continue
        return state
    raise RotationError("could not find an unused key id")


# --- kopf ----------------------------------------------------------------------------------


@kopf.on.startup(id="start-rotation")
async def start_rotation_loop(memo: kopf.Memo, **_: Any) -> None:
    """One `Rotator` in the operator's memo (kopf hands each Checkout's handlers a shallow copy
    of it, so it must be there before the first Checkout is seen). Runs after
    `handlers.configure`, which is registered first (kopf runs startup activities in order);
    without its runtime, that one has failed and the operator is exiting."""
    runtime = memo.get("runtime")
    if isinstance(runtime, Runtime):
        memo["rotator"] = Rotator.create(runtime)


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
            # Logged once, not every retry; a conflict (409) is another writer: read again.
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


@kopf.on.event(
    *CHECKOUTS,
    id="rotation-requested",
    when=lambda annotations, **_: (
        ROTATE_ANNOTATION in annotations or EMERGENCY_ANNOTATION in annotations
    ),
)
async def rotation_requested(
    namespace: str | None, name: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """An annotation asks for a rotation: wake the Checkout's rotation loop now."""
    rotator = memo.get("rotator")
    if namespace and name and isinstance(rotator, Rotator):
        rotator.wake(namespace, name)


@kopf.on.cleanup(id="close-rotation")
async def close_rotation(memo: kopf.Memo, **_: Any) -> None:
    rotator = memo.get("rotator")
    if isinstance(rotator, Rotator):
        await rotator.close()
