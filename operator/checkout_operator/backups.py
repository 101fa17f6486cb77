"""Backups after the CronJob: each finished backup Job's outcome in its Checkout's
``status.backup`` and ``BackupFailed`` condition (and an event), and ``CheckoutBackup``, which
asks for one backup now.

A backup Job's pod writes its report as the container's termination message
(`checkout_backup.__main__`), so the operator reads the outcome from the pod and the Jobs need no
access to the Kubernetes API. The pure functions come first; `Backups` does the reads and writes,
under the Checkout's lock so that a reconcile's status write never drops the backup's condition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from .children import as_body
from .kube import CHECKOUT, CHECKOUT_BACKUP, CRONJOB, JOB, POD, ApiError, KubeClient
from .status import condition
from .values import GROUP, OWNER_LABEL, Names

BACKUP_FAILED = "BackupFailed"
"""True while the latest backup failed; False (reason BackedUp) once one succeeds after it."""
COMPONENT_LABEL = "app.kubernetes.io/component"
REQUEST_LABEL = f"{GROUP}/backup-request"
"""On a Job started for a CheckoutBackup: that CheckoutBackup's name."""
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"

# A CheckoutBackup's phases.
PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"


@dataclass(frozen=True)
class Outcome:
    """A finished backup Job, as its pod reported it."""

    job: str
    succeeded: bool
    finished_at: str
    """When the Job completed or failed (its condition's time)."""
    report: Mapping[str, Any]
    """The termination report (`checkout_backup.dump`): archive, bytes, sha256, documents, ..."""
    error: str
    """Why it failed, in words (empty when it succeeded)."""


def job_finished(job: Mapping[str, Any]) -> tuple[bool, str, str] | None:
    """(succeeded, when, the Job's own message) of a Job that completed or failed; None while it
    runs."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True" or cond.get("type") not in ("Complete", "Failed"):
            continue
        message = str(cond.get("message") or cond.get("reason") or "")
        return cond["type"] == "Complete", str(cond.get("lastTransitionTime") or ""), message
    return None


def pod_report(pods: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The JSON report of the Job's latest pod that ended, and how its container ended (e.g.
    "OOMKilled, exit code 137"); (None, "") when no pod ended (e.g. deleted, or never started)."""
    ended = []
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated")
            if terminated:
                ended.append((str(terminated.get("finishedAt") or ""), terminated))
    if not ended:
        return None, ""
    _, terminated = max(ended, key=lambda item: item[0])
    how = f"{terminated.get('reason') or 'ended'}, exit code {terminated.get('exitCode')}"
    try:
        report = json.loads(str(terminated.get("message") or ""))
    except ValueError:
        return None, how
    return (report if isinstance(report, dict) else None), how


def outcome_of(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> Outcome | None:
    """A finished Job's outcome; None while it runs. A Job reported Complete whose report is
    missing or not ok counts as failed: the archive cannot be vouched for."""
    finished = job_finished(job)
    if finished is None:
        return None
    complete, when, job_message = finished
    report, how = pod_report(pods)
    name = str(job["metadata"]["name"])
    if complete and report is not None and report.get("ok"):
        return Outcome(name, True, when, report, "")
    if report is not None and report.get("error"):
        error = str(report["error"])
    elif how:
        error = f"the Job's pod ended without a report ({how})"
    else:
        error = job_message or "the Job failed before its pod ran"
    if job_message and job_message not in error and not complete:
        error = f"{error} ({job_message})"
    return Outcome(name, False, when, report or {}, error)


def _latest(backup: Mapping[str, Any]) -> str:
    successful = backup.get("lastSuccessful") or {}
    failed = backup.get("lastFailed") or {}
    return max(str(successful.get("completedAt") or ""), str(failed.get("failedAt") or ""))


def recorded(status: Mapping[str, Any] | None, job: str) -> bool:
    """Whether ``status.backup`` already names this Job as its last success or failure."""
    backup = (status or {}).get("backup") or {}
    return job in (
        (backup.get("lastSuccessful") or {}).get("job"),
        (backup.get("lastFailed") or {}).get("job"),
    )


def backup_status(
    status: Mapping[str, Any] | None,
    outcome: Outcome,
    *,
    claim: str,
    generation: int | None,
) -> dict[str, Any] | None:
    """Status fields (`reconcile.Runtime.publish`) recording ``outcome``: ``status.backup`` and,
    when it is the latest backup, the ``BackupFailed`` condition. None when the status has it
    already (a Job seen again, e.g. after the operator restarted)."""
    if recorded(status, outcome.job):
        return None
    backup = dict((status or {}).get("backup") or {})
    newest = outcome.finished_at >= _latest(backup)
    backup["claimName"] = claim
    report = outcome.report
    # An older Job seen late (e.g. listed after a restart) never hides a newer one's outcome.
    key, field = (
        ("lastSuccessful", "completedAt") if outcome.succeeded else ("lastFailed", "failedAt")
    )
    if outcome.finished_at < str((backup.get(key) or {}).get(field) or ""):
        return None
    if outcome.succeeded:
        backup["lastSuccessful"] = {
            "job": outcome.job,
            "archive": report.get("archive", ""),
            "bytes": report.get("bytes", 0),
            "sha256": report.get("sha256", ""),
            "documents": report.get("documents", 0),
            "seconds": report.get("seconds", 0),
            "completedAt": outcome.finished_at,
        }
        if newest and isinstance(report.get("kept"), int):
            backup["archives"] = report["kept"]
    else:
        backup["lastFailed"] = {
            "job": outcome.job,
            "failedAt": outcome.finished_at,
            "error": outcome.error[:1024],
        }
    computed: dict[str, Any] = {"backup": backup}
    if newest:
        computed["conditions"] = [backup_condition(outcome, generation)]
    return computed


def backup_condition(outcome: Outcome, generation: int | None) -> dict[str, Any]:
    if outcome.succeeded:
        report = outcome.report
        message = (
            f"{report.get('archive')}: {report.get('documents')} documents, "
            f"{report.get('bytes')} bytes"
        )
        return condition(BACKUP_FAILED, False, "BackedUp", message, generation)
    return condition(BACKUP_FAILED, True, "BackupFailed", outcome.error, generation)


def restored_status(current: Mapping[str, Any], outcome: Outcome) -> dict[str, Any]:
    """``status.restore`` once the restore Job finished (``current``: as the reconcile left it,
    with the plan)."""
    report = outcome.report
    if not outcome.succeeded:
        return {
            **current,
            "phase": "Failed",
            "job": outcome.job,
            "completedAt": outcome.finished_at,
            "message": outcome.error[:1024],
        }
    return {
        **current,
        "phase": "Succeeded",
        "job": outcome.job,
        "archive": report.get("archive", current.get("archive", "")),
        "from": report.get("from", ""),
        "documents": report.get("documents", 0),
        "verifiedSha256": report.get("verifiedSha256", ""),
        "seconds": report.get("seconds", 0),
        "completedAt": outcome.finished_at,
        "message": "",
    }


def request_status(outcome: Outcome, claim: str) -> dict[str, Any]:
    """A CheckoutBackup's status once its Job finished."""
    report = outcome.report
    if not outcome.succeeded:
        return {"phase": FAILED, "job": outcome.job, "message": outcome.error[:1024]}
    return {
        "phase": SUCCEEDED,
        "job": outcome.job,
        "claimName": claim,
        "archive": report.get("archive", ""),
        "bytes": report.get("bytes", 0),
        "sha256": report.get("sha256", ""),
        "documents": report.get("documents", 0),
        "startedAt": report.get("startedAt", ""),
        "completedAt": outcome.finished_at,
        "message": "",
    }


def request_job(request: Mapping[str, Any], cronjob: Mapping[str, Any]) -> dict[str, Any]:
    """The Job a CheckoutBackup runs: the CronJob's template (as ``kubectl create job --from``
    makes), labelled with the request and owned by it, so deleting the request deletes the Job
    (never the archive)."""
    template = cronjob["spec"]["jobTemplate"]
    meta = request["metadata"]
    labels = {**((template.get("metadata") or {}).get("labels") or {}), REQUEST_LABEL: meta["name"]}
    return {
        "apiVersion": JOB.api_version,
        "kind": JOB.kind,
        "metadata": {
            "name": request_job_name(str(meta["name"])),
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "ownerReferences": [
                {
                    "apiVersion": CHECKOUT_BACKUP.api_version,
                    "kind": CHECKOUT_BACKUP.kind,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": template["spec"],
    }


def request_job_name(request: str) -> str:
    """``<request>-backup`` (the CRD keeps request names short enough for a Job's)."""
    return f"{request}-backup"


class Backups:
    """The operator's side of backups; ``runtime`` is the `reconcile.Runtime` (its locks and
    its status writer)."""

    def __init__(self, kube: KubeClient, runtime: Any) -> None:
        self.kube = kube
        self.runtime = runtime

    async def _pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        return await self.kube.list(POD, namespace, label_selector=f"{JOB_NAME_LABEL}={job}")

    async def job_changed(self, job: Mapping[str, Any]) -> Outcome | None:
        """A backup Job moved: once it finished, its outcome goes to the Checkout's status (and
        an event) and to its CheckoutBackup's. Returns the outcome when it was newly recorded."""
        meta = job["metadata"]
        namespace, owner = str(meta["namespace"]), str(meta["labels"][OWNER_LABEL])
        if job_finished(job) is None:
            return None
        outcome = outcome_of(job, await self._pods(namespace, str(meta["name"])))
        if outcome is None:
            return None
        request = (meta.get("labels") or {}).get(REQUEST_LABEL)
        claim = claim_of(job) or Names(owner).backup_claim
        if request:
            await self._finish_request(namespace, str(request), outcome, claim)
        async with self.runtime.lock(namespace, owner):
            checkout = await self.kube.get(CHECKOUT, namespace, owner)
            if checkout is None or checkout["metadata"].get("deletionTimestamp"):
                return None
            computed = backup_status(
                checkout.get("status"),
                outcome,
                claim=claim,
                generation=checkout["metadata"].get("generation"),
            )
            if computed is None or not await self.runtime.publish(checkout, computed):
                return None
        body = as_body(checkout)
        if outcome.succeeded:
            kopf.info(body, reason="BackedUp", message=backup_condition(outcome, None)["message"])
        else:
            kopf.warn(body, reason=BACKUP_FAILED, message=f"{outcome.job}: {outcome.error}")
        return outcome

    async def restore_job_changed(self, job: Mapping[str, Any]) -> Outcome | None:
        """The restore Job moved: once it finished, its outcome goes to ``status.restore`` (and
        an event). Returns the outcome when newly recorded; the caller reconciles then, so the
        services start (or the Checkout says it failed)."""
        meta = job["metadata"]
        namespace, owner = str(meta["namespace"]), str(meta["labels"][OWNER_LABEL])
        if job_finished(job) is None:
            return None
        outcome = outcome_of(job, await self._pods(namespace, str(meta["name"])))
        if outcome is None:
            return None
        async with self.runtime.lock(namespace, owner):
            checkout = await self.kube.get(CHECKOUT, namespace, owner)
            if checkout is None or checkout["metadata"].get("deletionTimestamp"):
                return None
            current = dict((checkout.get("status") or {}).get("restore") or {})
            if current.get("phase") in ("Succeeded", "Failed"):
                return None
            await self.runtime.publish(
                checkout, {"restore": restored_status(current, outcome)}, post_phase=False
            )
        body = as_body(checkout)
        if outcome.succeeded:
            report = outcome.report
            kopf.info(
                body,
                reason="Restored",
                message=f"{report.get('archive')} from {report.get('from')}: "
                f"{report.get('documents')} documents in {report.get('seconds')} s, every "
                "collection's count and hash equal",
            )
        else:
            kopf.warn(body, reason="RestoreFailed", message=f"{outcome.job}: {outcome.error}")
        return outcome

    async def _finish_request(
        self, namespace: str, name: str, outcome: Outcome, claim: str
    ) -> None:
        request = await self.kube.get(CHECKOUT_BACKUP, namespace, name)
        if request is None or (request.get("status") or {}).get("phase") in (SUCCEEDED, FAILED):
            return
        await self._set_request(request, request_status(outcome, claim))

    async def _set_request(self, request: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        meta = request["metadata"]
        await self.kube.merge_patch(
            CHECKOUT_BACKUP,
            meta["namespace"],
            meta["name"],
            {"status": dict(status)},
            subresource="status",
        )

    async def requested(self, request: Mapping[str, Any]) -> str:
        """A CheckoutBackup, new or seen again: start its Job from the Checkout's CronJob
        unless it has one. Returns what happened, in words. Raises `kopf.TemporaryError` while a
        backup of that Checkout runs (two at once would share the target) and
        `kopf.PermanentError` for a request that cannot be done."""
        meta, spec = request["metadata"], request.get("spec") or {}
        status = request.get("status") or {}
        namespace, checkout_name = str(meta["namespace"]), str(spec.get("checkout") or "")
        if status.get("phase") in (SUCCEEDED, FAILED) or status.get("job"):
            return f"already {status.get('phase', RUNNING).lower()}"
        checkout = await self.kube.get(CHECKOUT, namespace, checkout_name)
        problem = ""
        if checkout is None:
            problem = f"spec.checkout: there is no Checkout {checkout_name!r} in {namespace}"
        elif not (checkout.get("spec") or {}).get("backup"):
            problem = f"spec.checkout: Checkout {checkout_name!r} has no spec.backup"
        if problem:
            await self._set_request(request, {"phase": FAILED, "message": problem})
            kopf.warn(as_body(request), reason=BACKUP_FAILED, message=problem)
            raise kopf.PermanentError(problem)
        cronjob = await self.kube.get(CRONJOB, namespace, Names(checkout_name).backup_cronjob)
        if cronjob is None:
            await self._set_request(
                request, {"phase": PENDING, "message": "waiting for the backup CronJob"}
            )
            raise kopf.TemporaryError("the Checkout's backup CronJob is not there yet", delay=5)
        running = [
            job
            for job in await self.kube.list(
                JOB,
                namespace,
                label_selector=f"{OWNER_LABEL}={checkout_name},{COMPONENT_LABEL}=backup",
            )
            if job_finished(job) is None and not job["metadata"].get("deletionTimestamp")
        ]
        if running:
            names = ", ".join(sorted(str(j["metadata"]["name"]) for j in running))
            await self._set_request(
                request, {"phase": PENDING, "message": f"waiting for the running backup {names}"}
            )
            raise kopf.TemporaryError(f"backup {names} is running", delay=10)
        job = request_job(request, cronjob)
        try:
            await self.kube.create(job, kind=JOB)
        except ApiError as exc:
            if exc.permanent:
                await self._set_request(request, {"phase": FAILED, "message": str(exc)})
                raise kopf.PermanentError(str(exc)) from exc
            raise kopf.TemporaryError(str(exc), delay=5) from exc
        name = str(job["metadata"]["name"])
        await self._set_request(request, {"phase": RUNNING, "job": name, "message": ""})
        return f"started Job {name}"


def claim_of(job: Mapping[str, Any]) -> str:
    """The claim a backup Job writes to (its ``backups`` volume)."""
    pod = (((job.get("spec") or {}).get("template") or {}).get("spec")) or {}
    for volume in pod.get("volumes") or []:
        if volume.get("name") == "backups":
            return str((volume.get("persistentVolumeClaim") or {}).get("claimName") or "")
    return ""
