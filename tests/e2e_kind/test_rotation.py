"""Key rotation through mounted Secrets on a real cluster, under the shopper load: both rings
rotated on request (the annotation) and then on the spec's schedule; the new keys reach the pods
through the kubelet's update of the mounted Secret volume, with no pod restart; the operator
confirms each step from every pod's /internal/v1/keys; an operator restart in the middle of a
rotation resumes it; zero failed requests; the old keys are gone everywhere at the end."""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import jwt
import pytest

from tests.e2e_kind.conftest import OPERATOR_NAMESPACE, SERVICES, Platform
from tests.e2e_kind.load import BackgroundLoad
from tests.infra.kind import record_figure

pytestmark = pytest.mark.e2e

RINGS = ("jwt", "internal")
MOUNTS = {"jwt": "/var/run/secrets/checkout/jwt", "internal": "/var/run/secrets/checkout/internal"}
TOKEN_LIFETIME = 60  # the CRD's minimum: the old JWT key may leave 60 s + leeway after promotion


def _token_lifetime(platform: Platform) -> int | None:
    with platform.client() as http:
        signed = http.post(
            "/api/v1/auth/token",
            json={"email": platform.admin_email, "password": platform.admin_password},
        )
    if signed.status_code != 200:
        return None
    claims = jwt.decode(signed.json()["accessToken"], options={"verify_signature": False})
    return int(claims["exp"] - claims["iat"])


def _patch(platform: Platform, kind: str, patch: Any) -> None:
    """`kubectl patch` of the Checkout (kind: merge or json)."""
    platform.cluster.kubectl(
        "-n",
        platform.namespace,
        "patch",
        "checkout",
        platform.name,
        f"--type={kind}",
        "-p",
        json.dumps(patch),
    )


def _rotation_status(platform: Platform) -> dict[str, Any]:
    status: dict[str, Any] = platform.checkout().get("status", {}).get("secretRotation", {})
    return status


def _rotations(platform: Platform) -> dict[str, int]:
    status = _rotation_status(platform)
    return {ring: int(status.get(ring, {}).get("rotations", 0)) for ring in RINGS}


def _idle(platform: Platform) -> bool:
    status = _rotation_status(platform)
    return all(status.get(ring, {}).get("phase") == "idle" for ring in RINGS)


def _service_pods(platform: Platform) -> dict[str, tuple[str, int]]:
    """Every serving service pod: name -> (uid, restarts)."""
    pods = {}
    for service in SERVICES:
        for pod in platform.pods(service):
            # Not the databases, and not a pod still draining from the token-lifetime rollout.
            if "mongodb" in pod["metadata"]["name"] or pod["metadata"].get("deletionTimestamp"):
                continue
            restarts = sum(c["restartCount"] for c in pod["status"]["containerStatuses"])
            pods[pod["metadata"]["name"]] = (pod["metadata"]["uid"], restarts)
    return pods


def _mounted_kids(platform: Platform, pod: str, ring: str) -> list[str]:
    text = platform.cluster.kubectl(
        "-n", platform.namespace, "exec", pod, "--", "cat", f"{MOUNTS[ring]}/keyring.json"
    ).stdout
    return sorted(key["kid"] for key in json.loads(text)["keys"])


def _waiting_for_old_tokens(platform: Platform) -> bool:
    """The JWT ring has promoted its new key and waits out the old tokens' lifetime (or retires)."""
    jwt = _rotation_status(platform).get("jwt", {})
    return jwt.get("phase") == "retiring" or "expire" in jwt.get("step", "")


def _wait_rotated(platform: Platform, before: dict[str, int], what: str) -> None:
    platform.cluster.wait_for(
        lambda: all(_rotations(platform)[r] > before[r] for r in RINGS) and _idle(platform),
        timeout=420,
        what=what,
    )


def test_both_rings_rotate_under_load_on_request_and_on_schedule(platform: Platform) -> None:
    cluster, name, namespace = platform.cluster, platform.name, platform.namespace
    spec_patch = {
        "spec": {
            "secretRotation": {
                "tokenLifetimeSeconds": TOKEN_LIFETIME,
                "propagationDelaySeconds": 60,
            }
        }
    }
    _patch(platform, "merge", spec_patch)
    # A new token lifetime is a setting of auth, rolled out by the operator: wait for the
    # rollout (the phase is Ready once it is done), then until a sign-in really returns a token
    # of that lifetime (a token of the old, longer lifetime would outlive the rotation's wait and
    # be refused once its key is gone). Asked every 10 s: the sign-ins share the per-client
    # limit (30 a minute) with the load's.
    generation = platform.checkout()["metadata"]["generation"]
    cluster.wait_for(
        lambda: (
            (status := platform.checkout().get("status") or {}).get("observedGeneration")
            == generation
            and status.get("phase") == "Ready"
        ),
        timeout=300,
        what="the new token lifetime rolled out",
    )
    platform.wait_settled()
    deadline = time.monotonic() + 300
    while (lifetime := _token_lifetime(platform)) != TOKEN_LIFETIME:
        assert time.monotonic() < deadline, (
            f"auth issues tokens of {lifetime} s, not {TOKEN_LIFETIME}"
        )
        time.sleep(10)
    cluster.wait_for(
        lambda: _idle(platform) and platform.checkout()["status"].get("phase") == "Ready",
        timeout=300,
        what="Ready and no rotation in progress",
    )
    pods_before = _service_pods(platform)
    kids_before = {r: _rotation_status(platform)[r]["keyIds"] for r in RINGS}
    counts_before = _rotations(platform)
    began = time.monotonic()

    with BackgroundLoad(platform) as load:
        time.sleep(5)
        # 1. On request: both rings. Once the JWT ring waits out the token lifetime, the operator
        #    is restarted; the new one must pick the rotation up where it stood.
        cluster.kubectl(
            "-n", namespace, "annotate", "checkout", name, "checkout.platform.io/rotate=all"
        )
        cluster.wait_for(
            lambda: _waiting_for_old_tokens(platform),
            timeout=300,
            what="the JWT rotation waiting for old tokens to expire",
        )
        cluster.kubectl(
            "-n",
            OPERATOR_NAMESPACE,
            "delete",
            "pod",
            "-l",
            "app.kubernetes.io/name=checkout-operator",
            "--wait=true",
        )
        _wait_rotated(platform, counts_before, "both rings rotated on request")
        after_request = _rotations(platform)

        # 2. On the schedule: a cron minute at least a minute ahead (UTC).
        due = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=2)
        schedule = f"{due.minute} {due.hour} * * *"
        _patch(platform, "merge", {"spec": {"secretRotation": {"schedule": schedule}}})
        _wait_rotated(platform, after_request, f"both rings rotated on schedule {schedule}")
        report = load.stop()

    seconds = time.monotonic() - began
    rotations = sum(_rotations(platform)[r] - counts_before[r] for r in RINGS)
    record_figure(
        f"cluster rotation: {rotations} rotations, {report.sent} requests, {report.failed} failed"
        f" ({seconds:.0f} s, operator restarted once mid-rotation)"
    )
    assert report.failed == 0, report.summary()
    assert rotations == 4

    # No pod was restarted or replaced: the keys came through the mounted Secret volumes.
    assert _service_pods(platform) == pods_before
    status = _rotation_status(platform)
    for ring in RINGS:
        ring_status = status[ring]
        assert ring_status["keyIds"] == [ring_status["activeKeyId"]]
        assert not set(kids_before[ring]) & set(ring_status["keyIds"])
        assert ring_status["lastConfirmedBy"] == "reports"
        for pod in pods_before:
            assert _mounted_kids(platform, pod, ring) == ring_status["keyIds"], pod
    # Back to rotation by key age, so the schedule does not fire again in a kept cluster.
    _patch(platform, "json", [{"op": "remove", "path": "/spec/secretRotation/schedule"}])
