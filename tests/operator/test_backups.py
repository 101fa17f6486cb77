"""spec.backup on the real API server: the operator makes the archives' volume claim when it is
missing (never owned by the Checkout, so it outlives it) and applies the backup chart's CronJob
(concurrencyPolicy Forbid, the spec's schedule and retention, the claim's size as the backups'
capacity, the operator's own image); a schedule change patches it, a deleted CronJob is put
back, a Checkout without spec.backup has none, and a bad spec.backup is refused naming the
field. The Jobs themselves run on the kind cluster (no kubelet here)."""

from __future__ import annotations

from typing import Any

from tests.operator.cluster import OWNER_LABEL, Cluster, Refused, sample_checkout, wait_until
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
