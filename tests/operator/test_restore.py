"""spec.restore on the real API server: a new Checkout restored from a claim's archive or from a
CheckoutBackup holds its services and storefront at zero replicas while the restore Job (the
backup chart's, owned by the Checkout) runs, says Restoring, records the outcome in
status.restore with an event, then starts the services and deletes the Job; a failed restore
keeps them stopped and says why; the CRD takes spec.restore at creation only. The Job controller
and kubelet are played by `Cluster.finish_job` (the Jobs really run on the kind cluster)."""

from __future__ import annotations

from typing import Any

from kubernetes.dynamic.exceptions import DynamicApiError

from tests.operator.cluster import OWNER_LABEL, Cluster, Refused, sample_checkout, wait_until
from tests.operator.conftest import BACKUP_IMAGE, RunningOperator
from tests.operator.test_backups import REPORT
from tests.operator.test_lifecycle import ready

RESTORED = {
    "ok": True,
    "action": "restore",
    "archive": "old-20261207T030000.000Z.tar.gz",
    "sha256": "cd" * 32,
    "from": "shop-ns/old",
    "documents": 1234,
    "collections": 9,
    "startedAt": "2026-12-07T11:00:00Z",
    "completedAt": "2026-12-07T11:00:04Z",
    "seconds": 3.9,
}
SERVICE_DEPLOYMENTS = ("auth", "product", "cart", "order", "storefront")


def _replicas(cluster: Cluster, namespace: str, name: str = "shop") -> dict[str, int]:
    return {
        workload: int(
            (cluster.get("Deployment", namespace, f"{name}-{workload}") or {"spec": {}})[
                "spec"
            ].get("replicas", -1)
        )
        for workload in SERVICE_DEPLOYMENTS
    }


def _status(cluster: Cluster, namespace: str, name: str = "shop") -> dict[str, Any]:
    return dict(cluster.checkout(namespace, name).get("status") or {})


def _restore_job(cluster: Cluster, namespace: str, name: str = "shop") -> dict[str, Any] | None:
    return cluster.get("Job", namespace, f"{name}-restore")


def _events(cluster: Cluster, namespace: str) -> list[tuple[str, str, str]]:
    return [
        (e["reason"], e["type"], e["message"])
        for e in cluster.list("Event", namespace)
        if e["involvedObject"].get("kind") == "Checkout"
    ]


def _restoring(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """Wait for the Checkout to be Restoring, with its restore Job and every Deployment."""
    wait_until(
        lambda: (
            len(cluster.list("Deployment", namespace, f"{OWNER_LABEL}=shop")) == 5
            and _restore_job(cluster, namespace)
        ),
        what="the Deployments and the restore Job",
    )
    return dict(
        wait_until(
            lambda: (
                _status(cluster, namespace).get("phase") == "Restoring"
                and _status(cluster, namespace)
            ),
            what="phase Restoring",
        )
    )


def test_a_restore_from_a_claim_holds_the_services_until_it_succeeded(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    restore = {"from": {"claimName": "old-backups"}}
    cluster.create_checkout(namespace, sample_checkout(restore=restore))
    status = _restoring(cluster, namespace)
    assert status["restore"] == {
        "phase": "Restoring",
        "claimName": "old-backups",
        "archive": "latest",
    }
    (ready_condition,) = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert ready_condition["status"] == "False" and ready_condition["reason"] == "Restoring"
    assert "restoring latest from claim old-backups" in status["message"]
    assert set(_replicas(cluster, namespace).values()) == {0}
    # The databases run: their StatefulSets are not held.
    for service in ("auth", "product", "cart", "order"):
        statefulset = cluster.get("StatefulSet", namespace, f"shop-{service}-mongodb")
        assert statefulset is not None and statefulset["spec"]["replicas"] == 1
    job = _restore_job(cluster, namespace)
    assert job is not None
    (owner,) = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("Checkout", "shop")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == BACKUP_IMAGE
    assert "--archive=latest" in container["args"] and "restore" in container["args"]
    (volume,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"]["claimName"] == "old-backups"
    # The rest of the Checkout (its Secrets, Services) is made; no CronJob: no spec.backup.
    assert cluster.get("CronJob", namespace, "shop-backup") is None

    cluster.finish_job(namespace, job, report=RESTORED, exit_code=0)
    done = wait_until(
        lambda: (
            (r := _status(cluster, namespace).get("restore") or {}).get("phase") == "Succeeded"
            and r
        ),
        what="status.restore Succeeded",
    )
    assert (done["archive"], done["from"], done["documents"], done["job"]) == (
        RESTORED["archive"], "shop-ns/old", 1234, "shop-restore"
    )  # fmt: skip
    wait_until(
        lambda: set(_replicas(cluster, namespace).values()) == {1}, what="the services started"
    )
    wait_until(lambda: _restore_job(cluster, namespace) is None, what="the restore Job deleted")
    ready(cluster, namespace)
    messages = [m for r, t, m in _events(cluster, namespace) if r == "Restored" and t == "Normal"]
    assert messages and "1234 documents" in messages[0] and "equal" in messages[0]
    # Its outcome stays: a later reconcile neither restores again nor holds the services.
    cluster.merge("Checkout", namespace, "shop", {"spec": {"services": {"cart": {"replicas": 2}}}})
    wait_until(lambda: _replicas(cluster, namespace)["cart"] == 2, what="cart at 2 replicas")
    assert _restore_job(cluster, namespace) is None
    assert (_status(cluster, namespace).get("restore") or {})["phase"] == "Succeeded"


def test_a_failed_restore_keeps_the_services_stopped_and_says_why(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    restore = {"from": {"claimName": "old-backups", "archive": RESTORED["archive"]}}
    cluster.create_checkout(namespace, sample_checkout(restore=restore))
    _restoring(cluster, namespace)
    job = _restore_job(cluster, namespace)
    assert job is not None
    assert (
        f"--archive={RESTORED['archive']}"
        in job["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    refusal = "the order database holds 3 documents: a restore never overwrites data"
    cluster.finish_job(namespace, job, report={"ok": False, "error": refusal}, exit_code=1)
    status = wait_until(
        lambda: (
            _status(cluster, namespace).get("phase") == "Failed" and _status(cluster, namespace)
        ),
        what="phase Failed",
    )
    assert status["restore"]["phase"] == "Failed" and refusal in status["restore"]["message"]
    assert refusal in status["message"] and "stay stopped" in status["message"]
    warnings = wait_until(
        lambda: [m for r, t, m in _events(cluster, namespace) if r == "RestoreFailed"],
        what="a RestoreFailed event",
    )
    assert refusal in warnings[0]
    assert set(_replicas(cluster, namespace).values()) == {0}
    assert _restore_job(cluster, namespace) is not None  # kept, with its pod's log


def test_a_restore_from_a_checkout_backup_waits_for_it_and_uses_its_archive(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    cluster.create_checkout(
        namespace, sample_checkout("old", backup={"schedule": "@daily", "retention": 3})
    )
    ready(cluster, namespace, "old")
    cluster.create(
        "CheckoutBackup", namespace, {"metadata": {"name": "nightly"}, "spec": {"checkout": "old"}}
    )
    job = wait_until(lambda: cluster.get("Job", namespace, "nightly-backup"), what="its Job")

    # The new Checkout waits (Progressing, naming the request) until the backup succeeded.
    cluster.create_checkout(namespace, sample_checkout(restore={"from": {"backup": "nightly"}}))
    waiting = wait_until(
        lambda: (
            "has not succeeded yet" in str(_status(cluster, namespace).get("message"))
            and _status(cluster, namespace)
        ),
        what="the restore waiting for the CheckoutBackup",
    )
    assert waiting["phase"] == "Progressing" and "nightly" in waiting["message"]
    archive = "old-20261207T103000.250Z.tar.gz"
    cluster.finish_job(namespace, job, report={**REPORT, "archive": archive}, exit_code=0)
    _restoring(cluster, namespace)
    restore_job = _restore_job(cluster, namespace)
    assert restore_job is not None
    pod = restore_job["spec"]["template"]["spec"]
    assert f"--archive={archive}" in pod["containers"][0]["args"]
    (volume,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"]["claimName"] == "old-backups"
    assert (_status(cluster, namespace).get("restore") or {})["archive"] == archive


def test_a_restore_from_a_missing_checkout_backup_fails_naming_it(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    cluster.create_checkout(namespace, sample_checkout(restore={"from": {"backup": "nope"}}))
    status = wait_until(
        lambda: (
            _status(cluster, namespace).get("phase") == "Failed" and _status(cluster, namespace)
        ),
        what="phase Failed",
    )
    assert "spec.restore.from.backup: CheckoutBackup 'nope' does not exist" in status["message"]
    assert _restore_job(cluster, namespace) is None


def test_spec_restore_is_taken_at_creation_only_and_named_in_refusals(
    cluster: Cluster, namespace: str
) -> None:
    for restore, words in (
        ({"from": {}}, "give either backup"),
        ({"from": {"backup": "a", "claimName": "b"}}, "give either backup"),
        ({"from": {"backup": "a", "archive": "latest"}}, "archive goes with claimName"),
        ({"from": {"claimName": "b", "archive": "yesterday"}}, "spec.restore.from.archive"),
        ({"from": {"claimName": "Old Backups"}}, "spec.restore.from.claimName"),
    ):
        answer = cluster.try_create("Checkout", namespace, sample_checkout(restore=restore))
        assert isinstance(answer, Refused), restore
        message = str(answer.body.get("message"))
        assert answer.status == 422 and words in message, message

    cluster.create_checkout(namespace, sample_checkout())
    for patch in (
        {"spec": {"restore": {"from": {"claimName": "old-backups"}}}},  # added later
    ):
        refused = _try_merge(cluster, namespace, patch)
        assert refused is not None and "given when the Checkout is created" in refused
    cluster.create_checkout(
        namespace, sample_checkout("other", restore={"from": {"claimName": "old-backups"}})
    )
    for patch in (
        {"spec": {"restore": {"from": {"claimName": "new-backups"}}}},  # changed
        {"spec": {"restore": None}},  # removed
    ):
        refused = _try_merge(cluster, namespace, patch, name="other")
        assert refused is not None and "given when the Checkout is created" in refused


def _try_merge(
    cluster: Cluster, namespace: str, patch: dict[str, Any], name: str = "shop"
) -> str | None:
    """The API server's refusal of a merge patch, or None if it took it."""
    try:
        cluster.merge("Checkout", namespace, name, patch)
    except DynamicApiError as exc:
        return str(exc.body)
    return None
