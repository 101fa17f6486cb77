"""Backups on the kind cluster, end to end: a Checkout with ``spec.backup`` on an every-minute
schedule and retention 2, whose CronJob's Jobs really run (``python -m checkout_backup`` in the
operator's image, against the FerretDB databases), leaves exactly two archives in its claim after
three runs, seen by a pod of our own that mounts the claim; the Checkout's status shows the last
one. Then a target too small for an archive: a `CheckoutBackup` fails, the Checkout's
``BackupFailed`` condition turns True with a Warning event, and the two archives are still there.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e_kind.conftest import Platform, apply_and_wait_ready, read_claim, small_checkout
from tests.infra.kind import KindCluster, record_figure

pytestmark = pytest.mark.e2e

NAME = "vault"
RUNS = 3


def _status(cluster: KindCluster, namespace: str) -> dict[str, Any]:
    return dict(cluster.get("checkout", NAME, "-n", namespace).get("status") or {})


def _condition(cluster: KindCluster, namespace: str, type_: str) -> dict[str, Any] | None:
    conditions = _status(cluster, namespace).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), None)


def _succeeded_jobs(cluster: KindCluster, namespace: str) -> list[str]:
    jobs = cluster.get(
        "jobs", "-n", namespace, "-l", f"app.kubernetes.io/instance={NAME},"
        "app.kubernetes.io/component=backup",
    )["items"]  # fmt: skip
    done = [
        j for j in jobs
        if any(c["type"] == "Complete" and c["status"] == "True"
               for c in (j.get("status") or {}).get("conditions") or [])
    ]  # fmt: skip
    return [
        j["metadata"]["name"] for j in sorted(done, key=lambda j: j["status"]["completionTime"])
    ]


def _claim_files(cluster: KindCluster, namespace: str, claim: str) -> list[str]:
    """The files in the archives' claim, as a pod of ours that mounts it sees them."""
    script = "import json, os; print(json.dumps(sorted(os.listdir('/backups'))))"
    files: list[str] = read_claim(cluster, namespace, claim, NAME, script)
    return files


def test_scheduled_backups_keep_the_newest_two_and_a_full_target_fails_loudly(
    platform: Platform, namespace: str
) -> None:
    cluster = platform.cluster
    manifest = small_checkout(NAME, namespace, keep_data=False)
    manifest["spec"]["storefront"]["enabled"] = False
    manifest["spec"]["backup"] = {
        "schedule": "* * * * *",
        "retention": 2,
        "target": {"volumeClaim": {"size": "256Mi"}},
    }
    apply_and_wait_ready(cluster, manifest)
    began = time.monotonic()
    jobs = cluster.wait_for(
        lambda: (found := _succeeded_jobs(cluster, namespace)) and len(found) >= RUNS and found,
        timeout=60 * (RUNS + 4),
        what=f"{RUNS} scheduled backups succeeded",
    )
    # Stop the schedule before looking, so that no fourth run moves what is counted.
    cluster.kubectl(
        "-n", namespace, "patch", "checkout", NAME, "--type=merge",
        "-p", json.dumps({"spec": {"backup": {"suspend": True}}}),
    )  # fmt: skip
    cluster.wait_for(
        lambda: cluster.get("cronjob", f"{NAME}-backup", "-n", namespace)["spec"]["suspend"],
        what="the CronJob suspended",
    )
    cluster.wait_for(
        lambda: not [
            j for j in cluster.get("jobs", "-n", namespace)["items"]
            if not (j.get("status") or {}).get("completionTime")
            and not (j.get("status") or {}).get("failed")
        ],
        timeout=180,
        what="no backup running",
    )  # fmt: skip
    jobs = _succeeded_jobs(cluster, namespace)
    backup = cluster.wait_for(
        lambda: (
            (b := _status(cluster, namespace).get("backup") or {})
            .get("lastSuccessful", {})
            .get("job") == jobs[-1] and b
        ),
        timeout=60,
        what=f"status.backup naming {jobs[-1]}",
    )  # fmt: skip
    claim = backup["claimName"]
    assert claim == f"{NAME}-backups"
    last = backup["lastSuccessful"]
    assert last["bytes"] > 0 and len(last["sha256"]) == 64 and last["documents"] >= 0
    files = _claim_files(cluster, namespace, claim)
    archives = [f for f in files if f.endswith(".tar.gz")]
    assert len(archives) == 2, files
    assert sorted(files) == sorted([*archives, *(a + ".sha256" for a in archives)]), files
    assert last["archive"] in archives and backup["archives"] == 2
    done = _condition(cluster, namespace, "BackupFailed")
    assert done is not None and done["status"] == "False", done
    record_figure(
        f"cluster backups: {len(jobs)} scheduled runs, {len(archives)} archives kept "
        f"(retention 2), last {last['bytes']} bytes in {time.monotonic() - began:.0f} s"
    )

    # A target of 1Ki: too small for any archive. Asked for now, by a CheckoutBackup.
    cluster.kubectl(
        "-n", namespace, "patch", "checkout", NAME, "--type=merge",
        "-p", json.dumps({"spec": {"backup": {"target": {"volumeClaim": {"size": "1Ki"}}}}}),
    )  # fmt: skip
    cluster.wait_for(
        lambda: (
            "--capacity=1Ki"
            in cluster.get("cronjob", f"{NAME}-backup", "-n", namespace)["spec"]["jobTemplate"][
                "spec"
            ]["template"]["spec"]["containers"][0]["args"]
        ),
        what="the CronJob's new capacity",
    )
    cluster.apply(
        json.dumps(
            {
                "apiVersion": "checkout.platform.io/v1alpha1",
                "kind": "CheckoutBackup",
                "metadata": {"name": "too-big", "namespace": namespace},
                "spec": {"checkout": NAME},
            }
        )
    )
    request = cluster.wait_for(
        lambda: (
            (r := cluster.get("checkoutbackup", "too-big", "-n", namespace)).get("status", {})
            .get("phase") in ("Succeeded", "Failed") and r
        ),
        timeout=240,
        what="the CheckoutBackup finished",
    )  # fmt: skip
    assert request["status"]["phase"] == "Failed", request["status"]
    assert "full" in request["status"]["message"], request["status"]
    failed = cluster.wait_for(
        lambda: (
            (c := _condition(cluster, namespace, "BackupFailed")) and c["status"] == "True" and c
        ),
        timeout=60,
        what="BackupFailed True",
    )
    assert "full" in failed["message"], failed
    events = cluster.wait_for(
        lambda: [
            e for e in cluster.get("events", "-n", namespace)["items"]
            if e["reason"] == "BackupFailed" and e["type"] == "Warning"
            and e["involvedObject"]["kind"] == "Checkout"
        ],
        timeout=60,
        what="a BackupFailed Warning event on the Checkout",
    )  # fmt: skip
    assert "too-big-backup" in events[0]["message"], events
    # The failed backup lost nothing: the two archives are still there, no partial one.
    assert sorted(_claim_files(cluster, namespace, claim)) == sorted(files)
    record_figure(f"cluster backup to a 1Ki target: BackupFailed, {request['status']['message']}")
