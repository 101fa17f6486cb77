"""Key ring rotation as one pure state machine, for the JWT ring and the internal API-key ring.

A normal rotation moves through four phases, each with the ring layout it asks for and the
condition it waits for before the next one::

    adding     the new key joins the ring, verify-only      every service has loaded the new kid
    promoting  the new key becomes the active key           every service has it active, then the
                                                            longest credential lifetime + a margin
    retiring   the old key(s) leave the ring                no service still holds an old kid
    idle       done (``last`` records the outcome)

An emergency (``start_emergency``) removes compromised keys in one write: when the active key is
among them, another key is promoted at once (the key a rotation in progress has already added, if
it is not compromised itself, else a fresh one). Tokens signed with, and callers still sending, a
compromised key then fail by design; the only wait is for the services to load the new ring.

Propagation is confirmed from the services' ``GET /internal/v1/keys`` reports. A service that
cannot be reached is reported as ``None``; when every reachable service agrees but some cannot be
reached (or none is listed), the step is taken once ``propagation_delay`` has passed since the
ring was seen written, since an unreachable service loads the current ring whenever it comes back.
A reachable service that still shows the old ring is always waited for (the decision turns
``overdue`` after ``propagation_delay``, so a driver can warn).

Nothing here does I/O. The one driver, `services.keys.driver` (used by the operator, local mode
and the bench), reads the ring (ids only, never secrets), the reports and the clock, and applies
what ``plan_next`` decides. The state is a msgspec Struct stored as JSON beside the ring, so a
driver that restarts resumes where it stopped. The driver stores ``decision.state`` together
with the ring ``decision.write`` asks for: in the same request where the store allows it (a
Secret's annotation and data, one patch), else the state first (local mode's two files, each
renamed in). Every layout is expressed relative to the ring as read (add this kid, make that one
active, drop those), so re-applying it after a crash is harmless. A write that adds the new key
also records it as added (``added_at``) in the state stored with it, so a key id is only ever
created by the write that first adds it: should that key vanish from the ring, the rotation fails
instead of creating the id again with another secret.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from services.keys.keyring import KeyEntry, KeyringDocument
from services.keys.report import RingName, RingSeen

Phase = Literal["idle", "adding", "promoting", "retiring", "emergency", "failed"]
Seconds = Annotated[float, Meta(ge=0)]

KID_PREFIX: dict[RingName, str] = {"jwt": "jwt", "internal": "api"}
NONCE_PATTERN = re.compile(r"^[a-z0-9]{4,16}$")
_KID_TIME = re.compile(r"^[a-z]+-(\d{8}T\d{6}Z)-")
MAX_SEEN_KIDS = 1000


class RotationError(Exception):
    """A rotation cannot be started or a layout cannot be applied; the message says why."""


class RotationInProgress(RotationError):
    pass


class KeyIdReused(RotationError):
    pass


class RingConflict(RotationError):
    """The ring no longer holds what the rotation expects (someone else changed it)."""


class RingView(msgspec.Struct, frozen=True):
    """A ring as stored (a file, a Secret): its key ids, never its secrets."""

    active: str
    kids: tuple[str, ...]

    @classmethod
    def of(cls, document: KeyringDocument) -> RingView:
        return cls(active=document.active, kids=tuple(entry.kid for entry in document.keys))


class RotationPolicy(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Timings of one ring's rotation, recorded in the state when a rotation starts.

    ``credential_lifetime`` is how long something made with a key stays acceptable after the key
    stopped being active: for the JWT ring the longest token lifetime plus the verifiers' leeway;
    for the API-key ring zero (a caller sends the active key, so once every service has loaded the
    new active key only requests already in flight carry the old one, and ``margin`` covers them
    and their retries).
    """

    credential_lifetime: Seconds
    margin: Seconds = 30.0
    propagation_delay: Seconds = 120.0
    poll_interval: Annotated[float, Meta(gt=0)] = 2.0

    @classmethod
    def for_jwt(
        cls,
        token_ttl_seconds: float,
        *,
        leeway_seconds: float = 5.0,
        margin: float = 30.0,
        propagation_delay: float = 120.0,
        poll_interval: float = 2.0,
    ) -> RotationPolicy:
        return cls(
            credential_lifetime=token_ttl_seconds + leeway_seconds,
            margin=margin,
            propagation_delay=propagation_delay,
            poll_interval=poll_interval,
        )

    @classmethod
    def for_internal(
        cls, *, margin: float = 30.0, propagation_delay: float = 120.0, poll_interval: float = 2.0
    ) -> RotationPolicy:
        return cls(
            credential_lifetime=0.0,
            margin=margin,
            propagation_delay=propagation_delay,
            poll_interval=poll_interval,
        )


class LastRotation(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    finished_at: float
    active: str
    removed: tuple[str, ...]
    emergency: bool
    confirmed_by: Literal["reports", "delay"]


class RotationState(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Everything a rotation needs to resume; JSON via ``to_json`` / ``from_json``.

    ``new_kid`` is the key that is active at the end; ``create_new`` says whether this rotation
    creates it (it may only be created before it was first seen in the ring, ``added_at``).
    ``retiring`` lists the kids to remove. ``applied_at`` is when the ring was first seen in the
    current phase's layout, ``confirmed_at`` when every service was seen to have loaded it (or the
    propagation delay had passed), and ``confirmed_by`` which of the two it was.
    """

    ring: RingName
    version: int = 1
    phase: Phase = "idle"
    policy: RotationPolicy | None = None
    new_kid: str | None = None
    create_new: bool = False
    old_active: str | None = None
    retiring: tuple[str, ...] = ()
    started_at: float | None = None
    phase_since: float | None = None
    added_at: float | None = None
    applied_at: float | None = None
    confirmed_at: float | None = None
    confirmed_by: Literal["reports", "delay"] | None = None
    delay_used: bool = False
    seen_kids: tuple[str, ...] = ()
    rotations: int = 0
    last: LastRotation | None = None
    error: str | None = None

    @property
    def in_progress(self) -> bool:
        return self.phase in ("adding", "promoting", "retiring", "emergency")

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> RotationState:
        return msgspec.json.decode(data, type=cls)


class RingLayout(msgspec.Struct, frozen=True):
    """The ring to write: keep these existing keys, create these (fresh secrets), set active."""

    active: str
    keep: tuple[str, ...]
    add: tuple[str, ...] = ()

    @property
    def kids(self) -> tuple[str, ...]:
        return self.keep + self.add


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """What ``plan_next`` wants done.

    Persist ``state``; then, if ``write`` is set, write that layout (``apply_layout``); then call
    ``plan_next`` again after ``check_after`` seconds (``None``: nothing left to do). ``step``
    names what this call did (``add``, ``promote``, ``retire``, ``done``, ``emergency``, ``wait``,
    ``idle``, ``failed``); ``event`` is a sentence for a log line or a Kubernetes event when the
    rotation moved on, and ``waiting_for`` says what it is waiting for.
    """

    state: RotationState
    step: str
    write: RingLayout | None = None
    check_after: float | None = None
    waiting_for: str = ""
    event: str | None = None
    overdue: bool = False
    lagging: tuple[str, ...] = ()
    unreachable: tuple[str, ...] = ()


def new_state(ring: RingName) -> RotationState:
    return RotationState(ring=ring)


def make_kid(ring: RingName, now: float, nonce: str) -> str:
    """A key id that says which ring and when: ``jwt-20261125T201500Z-3fa9c1``.

    ``nonce`` is caller-supplied randomness (``secrets.token_hex(3)``), so this stays pure.
    """
    if not NONCE_PATTERN.match(nonce):
        raise RotationError(f"nonce {nonce!r} must be 4-16 lowercase letters or digits")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return f"{KID_PREFIX[ring]}-{stamp}-{nonce}"


def kid_time(kid: str) -> float | None:
    """When a key id made by `make_kid` was made; None for an id in another format."""
    found = _KID_TIME.match(kid)
    if not found:
        return None
    return float(calendar.timegm(time.strptime(found[1], "%Y%m%dT%H%M%SZ")))


def _remember(seen: Iterable[str], kids: Iterable[str]) -> tuple[str, ...]:
    out = list(dict.fromkeys(seen))
    known = set(out)
    for kid in kids:
        if kid not in known:
            out.append(kid)
            known.add(kid)
    # The timestamp in every generated kid keeps ids unique beyond this window too.
    return tuple(out[-MAX_SEEN_KIDS:])


def _fresh_kid(state: RotationState, ring: RingView, now: float, nonce: str) -> str:
    kid = make_kid(state.ring, now, nonce)
    if kid in state.seen_kids or kid in ring.kids:
        raise KeyIdReused(f"key id {kid} was used before; start again with another nonce")
    return kid


def _check_ring(ring: RingView) -> None:
    if ring.active not in ring.kids:
        raise RotationError(f"the ring's active key {ring.active!r} is not in it")
    if len(set(ring.kids)) != len(ring.kids):
        raise RotationError("the ring lists a key id twice")


def start_rotation(
    state: RotationState, ring: RingView, now: float, nonce: str, policy: RotationPolicy
) -> RotationState:
    """Begin a normal rotation: a new kid (never used before) will join, take over, and the
    keys in the ring now will leave. Raises ``RotationInProgress`` if one is running."""
    if state.in_progress:
        raise RotationInProgress(
            f"a {state.ring} rotation is already in phase {state.phase} (new key {state.new_kid})"
        )
    _check_ring(ring)
    kid = _fresh_kid(state, ring, now, nonce)
    return _begin(state, ring, now, "adding", policy, kid, create_new=True, retiring=ring.kids)


def start_emergency(
    state: RotationState,
    ring: RingView,
    now: float,
    compromised: Sequence[str],
    nonce: str,
    policy: RotationPolicy,
) -> RotationState:
    """Remove ``compromised`` kids at once; replaces any rotation in progress.

    If the active key is compromised, the key a rotation in progress has added is promoted when
    it is not compromised itself, else a fresh key is created and made active in the same write.
    Tokens signed with a removed key stop verifying, and callers still sending one are refused,
    as soon as each service loads the new ring.
    """
    _check_ring(ring)
    bad = tuple(dict.fromkeys(compromised))
    if not bad:
        raise RotationError("an emergency needs at least one compromised key id")
    unknown = [kid for kid in bad if kid not in ring.kids]
    if unknown:
        raise RotationError(f"key ids not in the {state.ring} ring: {', '.join(unknown)}")
    create_new = False
    if ring.active not in bad:
        target = ring.active
    elif (
        state.in_progress
        and state.new_kid is not None
        and state.new_kid in ring.kids
        and state.new_kid not in bad
    ):
        target = state.new_kid
    else:
        target = _fresh_kid(state, ring, now, nonce)
        create_new = True
    return _begin(state, ring, now, "emergency", policy, target, create_new, retiring=bad)


def _begin(
    state: RotationState,
    ring: RingView,
    now: float,
    phase: Phase,
    policy: RotationPolicy,
    new_kid: str,
    create_new: bool,
    retiring: tuple[str, ...],
) -> RotationState:
    """``state`` as a rotation or an emergency starts: nothing of an earlier one carried over.
    A key it does not create is in the ring already, so it counts as added from the start."""
    return msgspec.structs.replace(
        state,
        phase=phase,
        policy=policy,
        new_kid=new_kid,
        create_new=create_new,
        old_active=ring.active,
        retiring=retiring,
        started_at=now,
        phase_since=now,
        added_at=None if create_new else now,
        applied_at=None,
        confirmed_at=None,
        confirmed_by=None,
        delay_used=False,
        seen_kids=_remember(state.seen_kids, (*ring.kids, new_kid)),
        error=None,
    )


def _layout(state: RotationState, ring: RingView) -> RingLayout:
    """The layout the current phase asks for, relative to the ring as it is."""
    assert state.new_kid is not None
    new = state.new_kid
    kids = ring.kids
    add: tuple[str, ...] = ()
    if new not in kids and state.create_new and state.added_at is None:
        add = (new,)
    if state.phase == "adding":
        return RingLayout(active=ring.active, keep=kids, add=add)
    if state.phase == "promoting":
        return RingLayout(active=new, keep=kids)
    if state.phase == "retiring":
        return RingLayout(active=new, keep=tuple(k for k in kids if k not in state.retiring))
    # emergency: drop the compromised keys and switch active, all in one write
    return RingLayout(active=new, keep=tuple(k for k in kids if k not in state.retiring), add=add)


def _matches(layout: RingLayout, ring: RingView) -> bool:
    return not layout.add and ring.active == layout.active and set(ring.kids) == set(layout.keep)


def _propagated(state: RotationState, seen: RingSeen) -> bool:
    new = state.new_kid
    if seen.active is None:
        return False
    if state.phase == "adding":
        return new in seen.kids
    if state.phase == "promoting":
        return seen.active == new and new in seen.kids
    # retiring and emergency: the old keys are gone and the new one is active
    return seen.active == new and not set(state.retiring) & set(seen.kids)


WAITING_FOR = {
    "adding": "every service to load the new key {new}",
    "promoting": "every service to make {new} active",
    "retiring": "every service to drop {old}",
    "emergency": "every service to drop {old} and make {new} active",
}


def _failed(state: RotationState, now: float, reason: str) -> Decision:
    failed = msgspec.structs.replace(state, phase="failed", phase_since=now, error=reason)
    return Decision(state=failed, step="failed", event=f"{state.ring} rotation failed: {reason}")


def _advance(
    state: RotationState, ring: RingView, phase: Phase, step: str, now: float, event: str
) -> Decision:
    """Into ``phase``: its layout written at once, its confirmation not yet seen."""
    entered = msgspec.structs.replace(
        state, phase=phase, phase_since=now, applied_at=None, confirmed_at=None, confirmed_by=None
    )
    return Decision(
        state=entered, step=step, write=_layout(entered, ring), check_after=0.0, event=event
    )


def plan_next(
    state: RotationState,
    ring: RingView,
    now: float,
    reports: Mapping[str, RingSeen | None],
) -> Decision:
    """Decide the next step of ``state`` given the stored ``ring``, the time, and each service's
    report for this ring (``None`` for a service that could not be reached).

    Call it again after ``check_after`` seconds until that is ``None``; it is idempotent, so
    calling it more often (or again after a restart) does no harm.
    """
    state = msgspec.structs.replace(state, seen_kids=_remember(state.seen_kids, ring.kids))
    if not state.in_progress:
        return Decision(state=state, step=state.phase)
    policy, new = state.policy, state.new_kid
    assert policy is not None and new is not None
    if new not in ring.kids and (state.added_at is not None or not state.create_new):
        return _failed(state, now, f"the new key {new} disappeared from the ring")
    if new in ring.kids and state.added_at is None:
        state = msgspec.structs.replace(state, added_at=now)

    layout = _layout(state, ring)
    detail = {"new": new, "old": ", ".join(state.retiring)}
    if not _matches(layout, ring):
        return Decision(state=state, step="write", write=layout, check_after=0.0)
    if state.applied_at is None:
        state = msgspec.structs.replace(state, applied_at=now)
    assert state.applied_at is not None

    if state.confirmed_at is None:
        lagging = tuple(
            sorted(
                name
                for name, seen in reports.items()
                if seen is not None and not _propagated(state, seen)
            )
        )
        unreachable = tuple(sorted(name for name, seen in reports.items() if seen is None))
        elapsed = now - state.applied_at
        confirmed_by: Literal["reports", "delay"] | None = None
        if not lagging:
            if reports and not unreachable:
                confirmed_by = "reports"
            elif elapsed >= policy.propagation_delay:
                confirmed_by = "delay"
        if confirmed_by is None:
            remaining = policy.propagation_delay - elapsed
            wait = policy.poll_interval if lagging else min(policy.poll_interval, remaining)
            waiting = WAITING_FOR[state.phase].format(**detail)
            if lagging:
                waiting += f" (still behind: {', '.join(lagging)})"
            elif unreachable:
                waiting += f" (unreachable: {', '.join(unreachable)}; assumed after the delay)"
            return Decision(
                state=state,
                step="wait",
                check_after=max(wait, 0.0),
                waiting_for=waiting,
                overdue=elapsed > policy.propagation_delay,
                lagging=lagging,
                unreachable=unreachable,
            )
        state = msgspec.structs.replace(
            state,
            confirmed_at=now,
            confirmed_by=confirmed_by,
            delay_used=state.delay_used or confirmed_by == "delay",
        )

    assert state.confirmed_at is not None
    how = (
        "confirmed by every service"
        if state.confirmed_by == "reports"
        else "assumed after the propagation delay"
    )
    if state.phase == "adding":
        event = f"{state.ring}: new key {new} loaded ({how}); making it active"
        return _advance(state, ring, "promoting", "promote", now, event)
    if state.phase == "promoting":
        retire_at = state.confirmed_at + policy.credential_lifetime + policy.margin
        if now < retire_at:
            what = (
                f"tokens signed with {detail['old']} to expire"
                if state.ring == "jwt"
                else f"requests already sent with {detail['old']} to finish"
            )
            return Decision(
                state=state,
                step="wait",
                check_after=retire_at - now,
                waiting_for=f"{what} ({retire_at - now:.0f}s left)",
            )
        event = (
            f"{state.ring}: {new} active everywhere ({how}) and the wait for older "
            f"credentials is over; removing {detail['old']}"
        )
        return _advance(state, ring, "retiring", "retire", now, event)
    done = msgspec.structs.replace(
        state,
        phase="idle",
        phase_since=now,
        rotations=state.rotations + 1,
        last=LastRotation(
            finished_at=now,
            active=new,
            removed=state.retiring,
            emergency=state.phase == "emergency",
            confirmed_by="delay" if state.delay_used else "reports",
        ),
        policy=None,
        new_kid=None,
        create_new=False,
        old_active=None,
        retiring=(),
        started_at=None,
        added_at=None,
        applied_at=None,
        confirmed_at=None,
        confirmed_by=None,
        delay_used=False,
    )
    what = "emergency removal" if state.phase == "emergency" else "rotation"
    return Decision(
        state=done,
        step="done",
        event=f"{state.ring}: {what} done; active {new}, removed {detail['old']} ({how})",
    )


def apply_layout(
    document: KeyringDocument, layout: RingLayout, make_key: Callable[[str], KeyEntry]
) -> KeyringDocument:
    """The ring document ``layout`` asks for; ``make_key`` (``generate_key``) creates new keys.

    Kept pure so the file driver and the operator apply a decision the same way.
    """
    existing = {entry.kid: entry for entry in document.keys}
    missing = [kid for kid in layout.keep if kid not in existing]
    if missing:
        raise RingConflict(f"keys {', '.join(missing)} are no longer in the ring")
    clashing = [kid for kid in layout.add if kid in existing]
    if clashing:
        raise RingConflict(f"keys {', '.join(clashing)} are already in the ring")
    entries = [existing[kid] for kid in layout.keep]
    for kid in layout.add:
        entry = make_key(kid)
        if entry.kid != kid:
            raise RotationError(f"make_key returned {entry.kid!r} for {kid!r}")
        entries.append(entry)
    if layout.active not in {entry.kid for entry in entries}:
        raise RingConflict(f"the active key {layout.active} would not be in the ring")
    return KeyringDocument(active=layout.active, keys=entries)
