"""The rotation's part of a Checkout's status (pure): ``status.secretRotation`` (per ring: the
key ids, the phase and step, the last and next rotation) and the ``SecretsRotated`` condition."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.keys.report import RingName
from services.keys.rotation import Decision, RingView, RotationState

from .schedule import RotationSchedule
from .status import SECRETS_ROTATED, condition

_COUNTDOWN = re.compile(r"\s*\(\d+s left\)$")


def iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
