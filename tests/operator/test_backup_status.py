"""What a finished backup Job makes of the Checkout's status (pure): its report read from the
pod's termination message, the last success and failure kept apart, the condition following the
newest, and a Job seen again or late changing nothing."""

from __future__ import annotations

import json
from typing import Any

from checkout_operator.backups import backup_status, outcome_of


def _job(name: str, *, ok: bool, at: str) -> dict[str, Any]:
    kind = "Complete" if ok else "Failed"
    message = "" if ok else "Job has reached the specified backoff limit"
    return {
        "metadata": {"name": name},
        "status": {
            "conditions": [
                {"type": kind, "status": "True", "lastTransitionTime": at, "message": message}
            ]
        },
    }


def _pod(report: dict[str, Any] | str | None, *, reason: str = "Completed", code: int = 0) -> Any:
    terminated: dict[str, Any] = {"reason": reason, "exitCode": code, "finishedAt": "t"}
    if report is not None:
        terminated["message"] = report if isinstance(report, str) else json.dumps(report)
    return {"status": {"containerStatuses": [{"state": {"terminated": terminated}}]}}


OK = {"ok": True, "archive": "shop-20261207T030000.000Z.tar.gz", "bytes": 9, "documents": 4}


def test_the_report_decides_and_a_pod_without_one_says_how_it_ended() -> None:
    running = {"metadata": {"name": "j"}, "status": {"active": 1}}
    assert outcome_of(running, []) is None
    done = outcome_of(_job("j", ok=True, at="2026-12-07T03:00:05Z"), [_pod(OK)])
    assert done is not None and done.succeeded and done.report["documents"] == 4
    # Complete, but no report: the archive cannot be vouched for.
    silent = outcome_of(_job("j", ok=True, at="t"), [_pod("not json")])
    assert silent is not None and not silent.succeeded
    killed = outcome_of(_job("j", ok=False, at="t"), [_pod(None, reason="OOMKilled", code=137)])
    assert killed is not None and "OOMKilled, exit code 137" in killed.error
    assert "backoff limit" in killed.error
    full = outcome_of(_job("j", ok=False, at="t"), [_pod({"ok": False, "error": "target full"})])
    assert full is not None and full.error.startswith("target full")
    never = outcome_of(_job("j", ok=False, at="t"), [])
    assert never is not None and "backoff limit" in never.error


def test_the_newest_outcome_sets_the_condition_and_an_older_one_hides_nothing() -> None:
    first = outcome_of(_job("b-1", ok=True, at="2026-12-07T03:00:05Z"), [_pod(OK)])
    failed = outcome_of(
        _job("b-2", ok=False, at="2026-12-08T03:00:05Z"),
        [_pod({"ok": False, "error": "target full"}, reason="Error", code=1)],
    )
    assert first is not None and failed is not None
    status: dict[str, Any] = backup_status({}, first, claim="c", generation=1) or {}
    (condition,) = status["conditions"]
    assert condition["status"] == "False" and condition["reason"] == "BackedUp"
    assert backup_status(status, first, claim="c", generation=1) is None  # seen again
    after = backup_status(status, failed, claim="c", generation=1)
    assert after is not None and after["conditions"][0]["status"] == "True"
    assert after["backup"]["lastSuccessful"]["job"] == "b-1"
    assert after["backup"]["lastFailed"]["job"] == "b-2"
    # A success older than the last one, seen late: nothing changes.
    older = outcome_of(_job("b-0", ok=True, at="2026-12-06T03:00:05Z"), [_pod(OK)])
    assert older is not None and backup_status(after, older, claim="c", generation=1) is None
    # Older than the last failure but newer than the last success: recorded, condition kept.
    between = outcome_of(_job("b-1b", ok=True, at="2026-12-07T15:00:00Z"), [_pod(OK)])
    assert between is not None
    recorded = backup_status(after, between, claim="c", generation=1)
    assert recorded is not None and "conditions" not in recorded
    assert recorded["backup"]["lastSuccessful"]["job"] == "b-1b"
