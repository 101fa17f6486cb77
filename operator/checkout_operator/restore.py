"""``spec.restore``: what a new Checkout is restored from, and how far it got (pure functions).

The restore is one Job of the backup chart (``<checkout>-restore``, `checkout_backup.restore`),
made when the Checkout is created. Until it succeeded every service and the storefront are held
at zero replicas (`values.Release.restore`) so nothing writes into the databases being filled;
its outcome (`backups.Backups.restore_job_changed`) goes to ``status.restore``. A failed restore
keeps them at zero: the Checkout is Failed and says why (spec.restore never changes, so the way on
is a new Checkout). Once it succeeded the Job is deleted and the services start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .spec import CheckoutSpec
from .status import READY, condition
from .values import RestorePlan

PHASE_RESTORING = "Restoring"
RESTORE_SUCCEEDED = "Succeeded"
RESTORE_FAILED = "Failed"


class RestoreWaiting(Exception):
    """The restore cannot start yet (its CheckoutBackup has not finished): try again later."""


class RestoreInvalid(Exception):
    """The restore can never start as given (e.g. its CheckoutBackup failed or is gone)."""


def restore_status(status: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict((status or {}).get("restore") or {})


def restore_done(status: Mapping[str, Any] | None) -> bool:
    return restore_status(status).get("phase") == RESTORE_SUCCEEDED


def plan_of(
    spec: CheckoutSpec,
    status: Mapping[str, Any] | None,
    request: Mapping[str, Any] | None,
) -> RestorePlan | None:
    """The archive to restore, or None when there is nothing (left) to restore. ``request``:
    the CheckoutBackup ``spec.restore.from.backup`` names, as read (None: not found). Once chosen
    the plan is in ``status.restore`` and read from there, so a CheckoutBackup deleted later
    changes nothing."""
    if spec.restore is None:
        return None
    current = restore_status(status)
    if current.get("phase") == RESTORE_SUCCEEDED:
        return None
    if current.get("claimName") and current.get("archive"):
        return RestorePlan(str(current["claimName"]), str(current["archive"]))
    source = spec.restore.from_
    if not source.backup:
        return RestorePlan(source.claim_name, source.archive or "latest")
    where = f"spec.restore.from.backup: CheckoutBackup {source.backup!r}"
    if request is None:
        raise RestoreInvalid(f"{where} does not exist")
    got = request.get("status") or {}
    if got.get("phase") == "Failed":
        raise RestoreInvalid(f"{where} failed: {got.get('message', '')}")
    if got.get("phase") != "Succeeded" or not got.get("claimName") or not got.get("archive"):
        raise RestoreWaiting(f"{where} has not succeeded yet ({got.get('phase') or 'new'})")
    return RestorePlan(str(got["claimName"]), str(got["archive"]))


def restoring_status(
    plan: RestorePlan,
    status: Mapping[str, Any] | None,
    *,
    generation: int | None,
    url: str | None,
) -> dict[str, Any]:
    """Status fields while restoring (``status.restore`` kept as it is past its plan), or after
    a failed restore (Failed, why, and the services still at zero)."""
    current = restore_status(status)
    restore = {**current, "claimName": plan.claim, "archive": plan.archive}
    restore.setdefault("phase", PHASE_RESTORING)
    if restore["phase"] == RESTORE_FAILED:
        message = (
            f"the restore of {plan.archive} from claim {plan.claim} failed: "
            f"{restore.get('message', '')}; the services stay stopped (make a new Checkout)"
        )
        phase, reason = "Failed", "RestoreFailed"
    else:
        message = (
            f"restoring {plan.archive} from claim {plan.claim}; the services start when it is done"
        )
        phase, reason = PHASE_RESTORING, PHASE_RESTORING
    return {
        "phase": phase,
        "observedGeneration": generation,
        "url": url or "",
        "message": message,
        "restore": restore,
        "conditions": [condition(READY, False, reason, message, generation)],
    }
