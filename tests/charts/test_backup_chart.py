"""charts/backup rendered by the real helm: the CronJob runs one backup at a time with the
program's settings, its pods hold only what they need, and a value that is missing or wrong is
refused naming it. (Its NetworkPolicy is in tests/charts/test_network_policy.py's matrix.)"""

from __future__ import annotations

from typing import Any

from tests.infra.helm import SERVICES, Helm

TARGET = {"target": {"claimName": "shop-backups", "capacity": "2Gi"}}


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


def test_the_cronjob_runs_one_backup_at_a_time_of_every_database(helm: Helm) -> None:
    values = {**TARGET, "backup": {"schedule": "*/5 * * * *", "retention": 3}}
    objects = _by_kind(helm.template("backup", values, release="shop", namespace="ns"))
    assert set(objects) == {"CronJob", "ServiceAccount", "NetworkPolicy"}
    cronjob = objects["CronJob"]
    assert cronjob["spec"]["schedule"] == "*/5 * * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["suspend"] is False
    job = cronjob["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] == 1800
    container = _pod(cronjob)["containers"][0]
    assert container["command"] == ["python", "-m", "checkout_backup"]
    assert container["args"] == [
        *(f"--database={s}" for s in SERVICES),
        "backup", "--checkout=shop", "--namespace=ns", "--target=/backups",
        "--retention=3", "--capacity=2Gi",
    ]  # fmt: skip
    env = {e["name"]: e for e in container["env"]}
    for service in SERVICES:
        prefix = f"CHECKOUT_BACKUP_{service.upper()}_"
        assert env[prefix + "URI"]["value"] == (
            f"mongodb://shop-{service}-mongodb-0.shop-{service}-mongodb-headless.ns.svc"
            ".cluster.local:27017/?authSource=admin"
        )
        for key, field in (("USERNAME", "username"), ("PASSWORD", "password")):
            ref = env[prefix + key]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": f"shop-{service}-mongodb", "key": f"mongodb-root-{field}"}
    volumes = {v["name"]: v for v in _pod(cronjob)["volumes"]}
    assert volumes["backups"]["persistentVolumeClaim"] == {"claimName": "shop-backups"}


def test_the_pods_run_unprivileged_with_no_api_token(helm: Helm) -> None:
    values = {**TARGET, "restore": {"enabled": True, "claimName": "old-backups"}}
    objects = _by_kind(helm.template("backup", values, release="shop", namespace="ns"))
    for kind in ("CronJob", "Job"):
        pod = _pod(objects[kind])
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"] == "shop-backup"
        assert pod["securityContext"]["runAsNonRoot"] is True
        container = pod["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"]["limits"] and container["resources"]["requests"]
    restore = objects["Job"]
    assert restore["metadata"]["name"] == "shop-restore"
    container = _pod(restore)["containers"][0]
    assert container["args"][-3:] == ["restore", "--source=/backups", "--archive=latest"]
    # A new Checkout's databases may still be starting: the restore waits for them.
    assert "--timeout=300" in container["args"]
    assert "--timeout=300" not in _pod(objects["CronJob"])["containers"][0]["args"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["backups"]["readOnly"] is True  # a restore never writes into the archives
    claims = {v["name"]: v for v in _pod(restore)["volumes"]}
    assert claims["backups"]["persistentVolumeClaim"] == {"claimName": "old-backups"}


def test_hibernating_suspends_the_schedule(helm: Helm) -> None:
    for values in ({**TARGET, "hibernate": True}, {**TARGET, "backup": {"suspend": True}}):
        cronjob = _by_kind(helm.template("backup", values))["CronJob"]
        assert cronjob["spec"]["suspend"] is True


def test_a_missing_claim_is_refused_by_name(helm: Helm) -> None:
    result = helm.template_text("backup", {}, check=False)
    assert result.returncode != 0
    assert "target.claimName: the claim to use is required" in result.stderr
    result = helm.template_text("backup", {**TARGET, "restore": {"enabled": True}}, check=False)
    assert "restore.claimName: the claim to use is required" in result.stderr


def test_the_chart_lints(helm: Helm) -> None:
    helm.lint("backup", TARGET)
