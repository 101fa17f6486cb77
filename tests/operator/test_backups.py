"""spec.backup on the real API server: the operator makes the archives' volume claim when it is
missing (never owned by the Checkout, so it outlives it) and applies the backup chart's CronJob
(concurrencyPolicy Forbid, the spec's schedule and retention, the claim's size as the backups'
capacity, the operator's own image); a schedule change patches it, a deleted CronJob is put
back, a Checkout without spec.backup has none, and a bad spec.backup is refused naming the
field. The Jobs themselves run on the kind cluster (no kubelet here)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.dynamic.exceptions import DynamicApiError

from tests.operator.cluster import (
    OWNER_LABEL,
    Cluster,
    Refused,
    decoded,
    sample_checkout,
    wait_until,
)
from tests.operator.conftest import BACKUP_IMAGE, RunningOperator
from tests.operator.test_lifecycle import REPAIR_BOUND, ready

BACKUP = {
    "schedule": "*/5 * * * *",
    "retention": 3,
    "target": {"volumeClaim": {"size": "2Gi"}},
}


def _cronjob(cluster: Cluster, namespace: str) -> dict[str, Any] | None:
    return cluster.get("CronJob", namespace, "shop-backup")


def _container(cronjob: dict[str, Any]) -> dict[str, Any]:
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return dict(container)


def test_spec_backup_makes_its_claim_and_a_forbid_cronjob_that_follows_the_spec(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    cluster.create_checkout(
        namespace, sample_checkout(backup=BACKUP, mongodb={"keepDataOnDelete": False})
    )
    ready(cluster, namespace)
    claim = cluster.get("PersistentVolumeClaim", namespace, "shop-backups")
    assert claim is not None
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    labels = claim["metadata"].get("labels") or {}
    assert OWNER_LABEL not in labels and not claim["metadata"].get("ownerReferences")

    cronjob = wait_until(lambda: _cronjob(cluster, namespace), what="the backup CronJob")
    assert cronjob["spec"]["schedule"] == "*/5 * * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert not cronjob["spec"].get("suspend")
    assert cronjob["metadata"]["labels"][OWNER_LABEL] == "shop"
    (owner,) = cronjob["metadata"]["ownerReferences"]
    assert owner["kind"] == "Checkout" and owner["name"] == "shop"
    container = _container(cronjob)
    assert container["image"] == BACKUP_IMAGE
    assert "--retention=3" in container["args"] and "--capacity=2Gi" in container["args"]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"]["claimName"] == "shop-backups"

    # A schedule change reaches the CronJob; suspend too.
    cluster.merge(
        "Checkout",
        namespace,
        "shop",
        {"spec": {"backup": {"schedule": "@hourly", "suspend": True}}},
    )
    wait_until(
        lambda: (_cronjob(cluster, namespace) or {}).get("spec", {}).get("schedule") == "@hourly",
        what="the new schedule",
    )
    assert (_cronjob(cluster, namespace) or {})["spec"]["suspend"] is True

    # Deleted by hand: put back by the drift sweep.
    cluster.delete("CronJob", namespace, "shop-backup")
    wait_until(
        lambda: _cronjob(cluster, namespace), timeout=REPAIR_BOUND, what="the CronJob put back"
    )

    # Deleted with the Checkout, volumes included: the archives' claim stays.
    cluster.delete("Checkout", namespace, "shop")
    wait_until(lambda: cluster.get("Checkout", namespace, "shop") is None, what="deleted")
    wait_until(lambda: _cronjob(cluster, namespace) is None, what="the CronJob gone")
    kept = cluster.get("PersistentVolumeClaim", namespace, "shop-backups")
    assert kept is not None and kept["metadata"]["uid"] == claim["metadata"]["uid"]


def test_a_claim_that_exists_is_used_as_it_is(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    existing = {
        "metadata": {"name": "shop-archives"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "9Gi"}}},
    }
    made = cluster.create("PersistentVolumeClaim", namespace, existing)
    backup = {"target": {"volumeClaim": {"name": "shop-archives", "size": "1Gi"}}}
    cluster.create_checkout(namespace, sample_checkout(backup=backup))
    ready(cluster, namespace)
    cronjob = wait_until(lambda: _cronjob(cluster, namespace), what="the backup CronJob")
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if
            "persistentVolumeClaim" in v] == ["shop-archives"]  # fmt: skip
    assert cronjob["spec"]["schedule"] == "0 3 * * *"  # the CRD's default
    claim = cluster.get("PersistentVolumeClaim", namespace, "shop-archives")
    assert claim is not None and claim["metadata"]["uid"] == made["metadata"]["uid"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "9Gi"  # left as it was
    assert cluster.get("PersistentVolumeClaim", namespace, "shop-backups") is None


def test_without_spec_backup_there_is_no_cronjob(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    cluster.create_checkout(namespace, sample_checkout())
    ready(cluster, namespace)
    assert cluster.list("CronJob", namespace, f"{OWNER_LABEL}=shop") == []
    assert cluster.get("PersistentVolumeClaim", namespace, "shop-backups") is None


def test_a_bad_spec_backup_is_refused_naming_the_field(cluster: Cluster, namespace: str) -> None:
    for backup, field in (
        ({"schedule": "every night"}, "spec.backup.schedule"),
        ({"retention": 0}, "spec.backup.retention"),
        ({"target": {"volumeClaim": {"size": "lots"}}}, "spec.backup.target.volumeClaim.size"),
        ({"target": {"volumeClaim": {"name": "Shop Archives"}}}, "volumeClaim.name"),
        ({"timeZone": "Mars Base"}, "spec.backup.timeZone"),
    ):
        answer = cluster.try_create("Checkout", namespace, sample_checkout(backup=backup))
        assert isinstance(answer, Refused), backup
        message = str(answer.body.get("message"))
        assert answer.status == 422 and field in message, message


# --- what a finished backup Job reports -------------------------------------------------------
# No Job controller or kubelet runs here: `Cluster.finish_job` writes the pod's ended container
# (its termination message, the program's report) and the Job's conditions as they would.

REPORT = {
    "ok": True,
    "action": "backup",
    "archive": "shop-20261207T100000.000Z.tar.gz",
    "bytes": 48213,
    "sha256": "ab" * 32,
    "documents": 42,
    "collections": 6,
    "startedAt": "2026-12-07T10:00:00Z",
    "completedAt": "2026-12-07T10:00:02Z",
    "seconds": 1.7,
    "deleted": [],
    "kept": 2,
}
FULL = {"ok": False, "error": "backup target full: /backups holds 1024 bytes, capacity 1Ki"}
REQUEST_LABEL = "checkout.platform.io/backup-request"


def _scheduled_job(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """A Job as the CronJob controller makes it: the CronJob's template, owned by the CronJob."""
    cronjob = wait_until(lambda: _cronjob(cluster, namespace), what="the backup CronJob")
    template = cronjob["spec"]["jobTemplate"]
    return cluster.create(
        "Job",
        namespace,
        {
            "metadata": {
                "name": name,
                "labels": template["metadata"]["labels"],
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": cronjob["metadata"]["name"],
                        "uid": cronjob["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": template["spec"],
        },
    )


def _backup_status(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return dict((cluster.checkout(namespace).get("status") or {}).get("backup") or {})


def _checkout_events(cluster: Cluster, namespace: str) -> list[tuple[str, str, str]]:
    return [
        (e["reason"], e["type"], e["message"])
        for e in cluster.list("Event", namespace)
        if e["involvedObject"].get("kind") == "Checkout"
    ]


def _table_row(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """``kubectl get checkout shop`` as the API server prints it: column name -> cell."""
    table = decoded(
        cluster.api.request(
            "get",
            cluster.path("Checkout", namespace, "shop"),
            header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
            serialize=False,
        )
    )
    names = [column["name"] for column in table["columnDefinitions"]]
    (row,) = table["rows"]
    return dict(zip(names, row["cells"], strict=True))


def test_a_finished_backup_is_the_checkouts_status_its_condition_and_an_event(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    cluster.create_checkout(namespace, sample_checkout(backup=BACKUP))
    ready(cluster, namespace)
    assert _table_row(cluster, namespace)["Last Backup"] is None

    first = _scheduled_job(cluster, namespace, "shop-backup-29001")
    cluster.finish_job(namespace, first, report=REPORT, exit_code=0)
    backup = wait_until(
        lambda: _backup_status(cluster, namespace).get("lastSuccessful") and
        _backup_status(cluster, namespace),
        what="status.backup.lastSuccessful",
    )  # fmt: skip
    last = backup["lastSuccessful"]
    assert last["job"] == "shop-backup-29001"
    assert (last["archive"], last["bytes"], last["documents"], last["sha256"]) == (
        REPORT["archive"], 48213, 42, "ab" * 32
    )  # fmt: skip
    assert backup["claimName"] == "shop-backups" and backup["archives"] == 2
    done = cluster.condition(namespace, "BackupFailed")
    assert done is not None and done["status"] == "False" and done["reason"] == "BackedUp"
    assert REPORT["archive"] in done["message"] and "42 documents" in done["message"]
    assert _table_row(cluster, namespace)["Last Backup"]  # the printer column shows its age
    wait_until(
        lambda: any(r == "BackedUp" for r, _, _ in _checkout_events(cluster, namespace)),
        what="a BackedUp event",
    )

    # A full target: the condition turns True and a Warning names the Job and the cause; the
    # last successful backup is still the one shown.
    second = _scheduled_job(cluster, namespace, "shop-backup-29002")
    cluster.finish_job(namespace, second, report=FULL, exit_code=1)
    failed = wait_until(
        lambda: (c := cluster.condition(namespace, "BackupFailed")) and c["status"] == "True" and c,
        what="BackupFailed True",
    )
    assert failed["reason"] == "BackupFailed" and "backup target full" in failed["message"]
    warnings = wait_until(
        lambda: [
            m for r, t, m in _checkout_events(cluster, namespace)
            if r == "BackupFailed" and t == "Warning"
        ],
        what="a BackupFailed Warning event",
    )  # fmt: skip
    assert "shop-backup-29002" in warnings[0] and "backup target full" in warnings[0]
    backup = _backup_status(cluster, namespace)
    assert backup["lastSuccessful"]["job"] == "shop-backup-29001"
    assert backup["lastFailed"]["job"] == "shop-backup-29002"
    # The reconcile that follows a spec change keeps the backup's condition.
    cluster.merge("Checkout", namespace, "shop", {"spec": {"backup": {"retention": 4}}})
    wait_until(
        lambda: "--retention=4" in _container(_cronjob(cluster, namespace) or {})["args"],
        what="the new retention",
    )
    kept = cluster.condition(namespace, "BackupFailed")
    assert kept is not None and kept["status"] == "True"


def test_a_checkout_backup_runs_one_job_from_the_cronjob_and_reports_its_archive(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    cluster.create_checkout(namespace, sample_checkout(backup=BACKUP))
    ready(cluster, namespace)
    cronjob = wait_until(lambda: _cronjob(cluster, namespace), what="the backup CronJob")
    # One runs already: the request waits for it, two would share the target.
    running = _scheduled_job(cluster, namespace, "shop-backup-29001")
    request = cluster.create(
        "CheckoutBackup",
        namespace,
        {"metadata": {"name": "before-upgrade"}, "spec": {"checkout": "shop"}},
    )

    def request_status() -> dict[str, Any]:
        found = cluster.get("CheckoutBackup", namespace, "before-upgrade") or {}
        return dict(found.get("status") or {})

    pending = wait_until(
        lambda: request_status().get("phase") == "Pending" and request_status(),
        what="the request pending",
    )
    assert "shop-backup-29001" in pending["message"]
    assert cluster.get("Job", namespace, "before-upgrade-backup") is None
    cluster.finish_job(namespace, running, report=REPORT, exit_code=0)

    job = wait_until(
        lambda: cluster.get("Job", namespace, "before-upgrade-backup"),
        timeout=30,
        what="the request's Job",
    )
    assert job["metadata"]["labels"][REQUEST_LABEL] == "before-upgrade"
    assert job["metadata"]["labels"][OWNER_LABEL] == "shop"
    (owner,) = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("CheckoutBackup", request["metadata"]["uid"])
    template = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert (
        job["spec"]["template"]["spec"]["containers"][0]["args"]
        == (template["containers"][0]["args"])
    )
    wait_until(lambda: request_status().get("phase") == "Running", what="the request running")

    mine = {**REPORT, "archive": "shop-20261207T101500.000Z.tar.gz", "documents": 43}
    cluster.finish_job(namespace, job, report=mine, exit_code=0)
    done = wait_until(
        lambda: request_status().get("phase") == "Succeeded" and request_status(),
        what="the request succeeded",
    )
    assert (done["archive"], done["documents"], done["claimName"], done["job"]) == (
        "shop-20261207T101500.000Z.tar.gz", 43, "shop-backups", "before-upgrade-backup"
    )  # fmt: skip
    wait_until(
        lambda: (
            _backup_status(cluster, namespace).get("lastSuccessful", {}).get("job")
            == "before-upgrade-backup"
        ),
        what="the Checkout's last backup",
    )

    # A request's spec never changes, and its name leaves room for its Job's.
    with pytest.raises(DynamicApiError, match="spec never changes"):
        cluster.merge("CheckoutBackup", namespace, "before-upgrade", {"spec": {"checkout": "x"}})
    refused = cluster.try_create(
        "CheckoutBackup",
        namespace,
        {"metadata": {"name": "x" * 57}, "spec": {"checkout": "shop"}},
    )
    assert isinstance(refused, Refused) and "at most 56" in str(refused.body.get("message"))


def test_a_checkout_backup_of_a_checkout_without_backups_fails_naming_it(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    cluster.create_checkout(namespace, sample_checkout())
    for name, checkout, words in (
        ("nowhere", "elsewhere", "there is no Checkout 'elsewhere'"),
        ("unscheduled", "shop", "Checkout 'shop' has no spec.backup"),
    ):
        cluster.create(
            "CheckoutBackup",
            namespace,
            {"metadata": {"name": name}, "spec": {"checkout": checkout}},
        )
        status = wait_until(
            lambda name=name: (
                ((cluster.get("CheckoutBackup", namespace, name) or {}).get("status") or {}).get(
                    "phase"
                )
                == "Failed"
                and cluster.get("CheckoutBackup", namespace, name)
            ),
            what=f"{name} failed",
        )["status"]
        assert status["message"].startswith(f"spec.checkout: {words}"), status
    assert cluster.list("Job", namespace) == []
