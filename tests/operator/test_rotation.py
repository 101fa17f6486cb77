"""Rotation of a Checkout's keyrings by the operator, against the real API server with kopf running:
a whole rotation of each ring, step by step in the Secret, the status and the events; the
annotation that asks for one; a restart of the operator in the middle; the schedule; an
emergency removal; and propagation confirmed by a pod's key report.

There are no pods here (no kubelet) unless a test makes one, so the operator confirms each step
after the propagation delay. The token lifetime the CRD allows is at least 60 s: the JWT tests
hand the operator a clock they move forward instead of waiting it out.
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from checkout_operator.config import ConfigError, OperatorConfig
from checkout_operator.keyring_secret import STATE_ANNOTATION, SecretRingStore
from checkout_operator.kube import KubeClient
from checkout_operator.login import client_configuration
from checkout_operator.pods import pod_url
from checkout_operator.rotation_request import (
    EMERGENCY_ANNOTATION,
    ROTATE_ANNOTATION,
    Request,
    read_request,
)
from checkout_operator.status import merge_patch

from services.keys.driver import RingDriver, StoreConflict
from services.keys.keyring import dump_keyring, encode_secret, generate_key, parse_keyring
from services.keys.rotation import RingView, RotationPolicy, RotationState, kid_time
from tests.infra.helm import Helm
from tests.infra.kubeapi import KubeAPIServer, kube_client
from tests.operator.cluster import Cluster, sample_checkout, wait_until
from tests.operator.conftest import RunningOperator, run_operator

ROTATION = {"intervalMinutes": 1440, "tokenLifetimeSeconds": 60, "propagationDelaySeconds": 1}
MARGIN = 1.0
TICK = 0.2
# A JWT rotation waits the token lifetime + the verifiers' 5 s leeway + the margin once promoted.
JWT_WAIT = 60 + 5 + MARGIN
SECRET = {"jwt": "shop-jwt-keyring", "internal": "shop-internal-keyring"}

Layout = tuple[str, frozenset[str]]


class Clock:
    """The operator's rotation clock: real time, moved forward on demand, or held still."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.frozen_at: float | None = None

    def __call__(self) -> float:
        return self.frozen_at if self.frozen_at is not None else time.time() + self.offset

    def advance(self, seconds: float) -> None:
        if self.frozen_at is not None:
            self.frozen_at += seconds
        else:
            self.offset += seconds

    def freeze(self) -> None:
        self.frozen_at = self()

    def release(self) -> None:
        if self.frozen_at is not None:
            self.offset = self.frozen_at - time.time()
            self.frozen_at = None


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rotating_config(operator_config: OperatorConfig, clock: Clock) -> OperatorConfig:
    return dataclasses.replace(
        operator_config,
        rotation_check_interval=TICK,
        rotation_poll_interval=TICK,
        rotation_margin=MARGIN,
        rotation_probe_timeout=1.0,
        clock=clock,
    )


@pytest.fixture
def operator(
    rotating_config: OperatorConfig, namespace: str, cluster: Cluster
) -> Iterator[RunningOperator]:
    with run_operator(rotating_config, (namespace,)) as running:
        yield running


def layout(secret: dict[str, Any]) -> Layout:
    """The ring in a keyring Secret, parsed exactly as a service parses it."""
    active, keys = parse_keyring(base64.b64decode(secret["data"]["keyring.json"]))
    return active, frozenset(keys)


def current(cluster: Cluster, namespace: str, ring: str) -> Layout:
    secret = cluster.get("Secret", namespace, SECRET[ring])
    assert secret is not None
    return layout(secret)


def ring_status(cluster: Cluster, namespace: str, ring: str) -> dict[str, Any]:
    status = cluster.checkout(namespace).get("status") or {}
    found: dict[str, Any] = (status.get("secretRotation") or {}).get(ring) or {}
    return found


def saved_state(cluster: Cluster, namespace: str, ring: str) -> RotationState:
    secret = cluster.get("Secret", namespace, SECRET[ring])
    assert secret is not None
    return RotationState.from_json(secret["metadata"]["annotations"][STATE_ANNOTATION])


def events(cluster: Cluster, namespace: str) -> list[tuple[str, str, str]]:
    return [
        (e["reason"], e["type"], e["message"])
        for e in sorted(cluster.list("Event", namespace), key=lambda e: e["metadata"]["name"])
        if e["involvedObject"].get("kind") == "Checkout"
    ]


def reasons(cluster: Cluster, namespace: str) -> set[str]:
    return {reason for reason, _, _ in events(cluster, namespace)}


def annotate(cluster: Cluster, namespace: str, key: str, value: str | None) -> None:
    cluster.merge("Checkout", namespace, "shop", {"metadata": {"annotations": {key: value}}})


def annotations(cluster: Cluster, namespace: str) -> dict[str, str]:
    found: dict[str, str] = cluster.checkout(namespace)["metadata"].get("annotations") or {}
    return found


def idle(cluster: Cluster, namespace: str, **rotation: Any) -> dict[str, Layout]:
    """Create the Checkout; wait until the rotation reports both rings idle; their layouts."""
    cluster.create_checkout(namespace, sample_checkout(secretRotation={**ROTATION, **rotation}))
    wait_until(
        lambda: all(ring_status(cluster, namespace, r).get("phase") == "idle" for r in SECRET),
        what="both rings idle in the status",
    )
    return {ring: current(cluster, namespace, ring) for ring in SECRET}


class SecretHistory:
    """Every version of one Secret the API server stored, from a watch kept open until the end."""

    def __init__(self, server: KubeAPIServer, cluster: Cluster, namespace: str, name: str) -> None:
        self.server = server
        self.path = cluster.path("Secret", namespace)
        self.name = name
        first = cluster.get("Secret", namespace, name)
        assert first is not None
        self.versions: list[dict[str, Any]] = [first]
        self.version = str(first["metadata"]["resourceVersion"])
        self.errors: list[Any] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        with kube_client(self.server, timeout=15.0) as client:
            while not self.stopped.is_set():
                params = {
                    "watch": "true",
                    "fieldSelector": f"metadata.name={self.name}",
                    "resourceVersion": self.version,
                    "timeoutSeconds": "2",
                }
                with client.stream("GET", self.path, params=params) as response:
                    for line in response.iter_lines():
                        if not line:
                            continue
                        event = json.loads(line)
                        if event["type"] in ("ADDED", "MODIFIED"):
                            self.versions.append(event["object"])
                            self.version = event["object"]["metadata"]["resourceVersion"]
                        elif event["type"] == "ERROR":
                            self.errors.append(event["object"])

    def stop(self) -> None:
        time.sleep(0.5)  # let the watch deliver the last write
        self.stopped.set()
        self.thread.join(10)
        assert not self.errors, self.errors

    def layouts(self) -> list[Layout]:
        """The rings the Secret held, in order (a version that changed only the state is not
        a new layout); every version parses as a keyring a service accepts."""
        found: list[Layout] = []
        for version in self.versions:
            ring = layout(version)
            if not found or found[-1] != ring:
                found.append(ring)
        return found


@contextlib.contextmanager
def history(
    kube_api: KubeAPIServer, cluster: Cluster, namespace: str, ring: str
) -> Iterator[SecretHistory]:
    watched = SecretHistory(kube_api, cluster, namespace, SECRET[ring])
    try:
        yield watched
    finally:
        watched.stop()


def the_rotation(old: str, new: str) -> list[Layout]:
    return [
        (old, frozenset({old})),
        (old, frozenset({old, new})),
        (new, frozenset({old, new})),
        (new, frozenset({new})),
    ]


def test_an_annotation_rotates_the_internal_ring_step_by_step(
    cluster: Cluster, namespace: str, operator: RunningOperator, kube_api: KubeAPIServer
) -> None:
    before = idle(cluster, namespace)
    (old,) = before["internal"][1]
    assert cluster.condition(namespace, "SecretsRotated")["status"] == "True"  # type: ignore[index]

    seen: list[tuple[str, str]] = []
    with history(kube_api, cluster, namespace, "internal") as watched:
        annotate(cluster, namespace, ROTATE_ANNOTATION, "internal")

        def finished() -> bool:
            whole = cluster.checkout(namespace).get("status") or {}
            status = (whole.get("secretRotation") or {}).get("internal") or {}
            step = (status.get("phase", ""), status.get("step", ""))
            if step[0] != "idle" and (not seen or seen[-1] != step):
                seen.append(step)
            conditions = whole.get("conditions") or []
            condition = next((c for c in conditions if c["type"] == "SecretsRotated"), {})
            if status.get("phase") != "idle":
                assert condition.get("status") == "False"
                assert condition.get("reason") == "Rotating"
            return status.get("rotations") == 1 and status.get("phase") == "idle"

        # Within 30 s: the test's delays (1 s each) were used, not the production margin
        # alone (30 s). Not a speed check: a loaded CI machine took 18 s for these 4 s.
        wait_until(finished, timeout=30, interval=0.05, what="the internal rotation done")

    new = current(cluster, namespace, "internal")[0]
    assert new != old and new.startswith("api-")
    assert watched.layouts() == the_rotation(old, new)
    assert current(cluster, namespace, "jwt") == before["jwt"]  # the other ring is untouched

    # The status showed each phase with what it waited for, and shows the outcome.
    phases = [phase for phase, _ in seen]
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == [
        "adding",
        "promoting",
        "retiring",
    ], seen
    assert any(f"every service to load the new key {new}" in step for _, step in seen), seen
    assert any(f"requests already sent with {old} to finish" in step for _, step in seen), seen
    status = ring_status(cluster, namespace, "internal")
    assert status["activeKeyId"] == new
    assert status["keyIds"] == [new]
    assert status["lastConfirmedBy"] == "delay"  # no pod to ask
    assert "newKeyId" not in status and "step" not in status
    made = kid_time(new)
    assert made is not None
    assert status["nextRotation"] == time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(made + 1440 * 60)
    )
    rotated = cluster.condition(namespace, "SecretsRotated")
    assert rotated is not None and rotated["status"] == "True", rotated
    assert f"internal key {new}" in rotated["message"]

    # The request was acknowledged by removing it; every step was an event.
    assert ROTATE_ANNOTATION not in annotations(cluster, namespace)
    wait_until(
        lambda: (
            {"RotationStarted", "KeyAdded", "KeyPromoted", "OldKeysRemoving", "RotationDone"}
            <= reasons(cluster, namespace)
        ),
        what="an event per step",
    )
    started_event = next(m for r, _, m in events(cluster, namespace) if r == "RotationStarted")
    assert f"internal: rotation asked for by {ROTATE_ANNOTATION}: {new}" in started_event
    state = saved_state(cluster, namespace, "internal")
    assert state.phase == "idle" and state.rotations == 1
    assert {old, new} <= set(state.seen_kids)


def test_a_jwt_rotation_resumes_after_a_restart_without_making_a_second_key(
    cluster: Cluster,
    namespace: str,
    rotating_config: OperatorConfig,
    clock: Clock,
    kube_api: KubeAPIServer,
) -> None:
    with contextlib.ExitStack() as stack:
        with run_operator(rotating_config, (namespace,)):
            before = idle(cluster, namespace)
            (old,) = before["jwt"][1]
            watched = stack.enter_context(history(kube_api, cluster, namespace, "jwt"))
            clock.freeze()  # the propagation delay cannot pass: the rotation stays in "adding"
            annotate(cluster, namespace, ROTATE_ANNOTATION, "jwt")
            added = wait_until(
                lambda: len((ring := current(cluster, namespace, "jwt"))[1]) == 2 and ring,
                what="the new key added",
            )
            wait_until(
                lambda: ring_status(cluster, namespace, "jwt").get("phase") == "adding",
                what="status phase adding",
            )
        # The operator is gone in the middle of the rotation; the state is with the Secret.
        assert added[0] == old
        (new,) = added[1] - {old}
        state = saved_state(cluster, namespace, "jwt")
        assert (state.phase, state.new_kid) == ("adding", new)
        assert ROTATE_ANNOTATION not in annotations(cluster, namespace)

        with run_operator(rotating_config, (namespace,)) as second:
            ticks = wait_until(lambda: second.memo.get("rotator"), what="the rotation loop")
            wait_until(lambda: ticks.ticks >= 5, what="five ticks of the new operator")
            assert current(cluster, namespace, "jwt") == added  # nothing added again
            clock.release()
            promoted = wait_until(
                lambda: (ring := current(cluster, namespace, "jwt"))[0] == new and ring,
                what="the new key active",
            )
            assert promoted[1] == frozenset({old, new})
            status = wait_until(
                lambda: (
                    (s := ring_status(cluster, namespace, "jwt")).get("waitUntil")
                    and "to expire" in s.get("step", "")
                    and s
                ),
                what="the wait for old tokens in the status",
            )
            assert status["phase"] == "promoting"
            assert f"tokens signed with {old} to expire" in status["step"]
            # Old tokens are still valid for the token lifetime: the old key stays meanwhile.
            time.sleep(1.0)
            assert current(cluster, namespace, "jwt") == promoted
            clock.advance(JWT_WAIT)
            wait_until(
                lambda: ring_status(cluster, namespace, "jwt").get("rotations") == 1,
                what="the jwt rotation done",
            )

    assert watched.layouts() == the_rotation(old, new)
    kids = {kid for version in watched.versions for kid in layout(version)[1]}
    assert kids == {old, new}
    status = ring_status(cluster, namespace, "jwt")
    assert (status["activeKeyId"], status["keyIds"], status["phase"]) == (new, [new], "idle")
    assert current(cluster, namespace, "internal") == before["internal"]


def test_keyrings_rotate_on_their_schedule(
    cluster: Cluster, namespace: str, operator: RunningOperator, clock: Clock
) -> None:
    before = idle(cluster, namespace, intervalMinutes=5)
    for ring in SECRET:
        made = kid_time(before[ring][0])
        assert made is not None
        assert ring_status(cluster, namespace, ring)["nextRotation"] == time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(made + 300)
        )
    time.sleep(1.0)
    assert current(cluster, namespace, "jwt") == before["jwt"]  # not due yet

    clock.advance(301)
    wait_until(
        lambda: ring_status(cluster, namespace, "internal").get("rotations") == 1,
        what="the internal ring rotated",
    )
    jwt = wait_until(
        lambda: (s := ring_status(cluster, namespace, "jwt")).get("waitUntil") and s,
        what="the jwt rotation waiting for old tokens",
    )
    assert jwt["phase"] == "promoting"
    clock.advance(JWT_WAIT)
    wait_until(
        lambda: ring_status(cluster, namespace, "jwt").get("rotations") == 1,
        what="the jwt ring rotated",
    )
    for ring in SECRET:
        active, kids = current(cluster, namespace, ring)
        assert kids == {active} and active != before[ring][0]
    started = [m for r, _, m in events(cluster, namespace) if r == "RotationStarted"]
    assert len(started) == 2
    assert all("rotation scheduled (every 5 minutes of key age)" in m for m in started), started
    # The next one is counted from the new keys.
    assert ring_status(cluster, namespace, "jwt")["nextRotation"] > jwt["startedAt"]


def test_a_cron_schedule_is_used_and_a_bad_one_is_reported(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    cluster.create_checkout(
        namespace, sample_checkout(secretRotation={**ROTATION, "schedule": "61 3 * * *"})
    )
    bad = wait_until(
        lambda: (
            (c := cluster.condition(namespace, "SecretsRotated")) and c["status"] == "False" and c
        ),
        what="SecretsRotated False",
    )
    assert bad["reason"] == "InvalidSchedule"
    assert "schedule '61 3 * * *': " in bad["message"] and "out of range" in bad["message"]
    assert "nextRotation" not in ring_status(cluster, namespace, "jwt")
    wait_until(lambda: "InvalidSchedule" in reasons(cluster, namespace), what="a warning event")

    cluster.merge(
        "Checkout", namespace, "shop", {"spec": {"secretRotation": {"schedule": "30 3 * * *"}}}
    )
    fixed = wait_until(
        lambda: (
            (c := cluster.condition(namespace, "SecretsRotated")) and c["status"] == "True" and c
        ),
        what="SecretsRotated True",
    )
    assert "cron 30 3 * * * (UTC)" in fixed["message"]
    next_jwt = ring_status(cluster, namespace, "jwt")["nextRotation"]
    assert next_jwt.endswith("T03:30:00Z")
    made = kid_time(current(cluster, namespace, "jwt")[0])
    assert made is not None
    assert 0 < calendar.timegm(time.strptime(next_jwt, "%Y-%m-%dT%H:%M:%SZ")) - made <= 86400
    assert cluster.checkout(namespace)["status"]["secretRotation"]["schedule"] == (
        "cron 30 3 * * * (UTC)"
    )


def test_an_emergency_removes_a_compromised_key_in_one_write(
    cluster: Cluster, namespace: str, operator: RunningOperator, kube_api: KubeAPIServer
) -> None:
    before = idle(cluster, namespace)
    old = before["jwt"][0]
    with history(kube_api, cluster, namespace, "jwt") as watched:
        annotate(cluster, namespace, EMERGENCY_ANNOTATION, old)
        wait_until(
            lambda: ring_status(cluster, namespace, "jwt").get("rotations") == 1,
            what="the emergency done",
        )
    new = current(cluster, namespace, "jwt")[0]
    assert watched.layouts() == [(old, frozenset({old})), (new, frozenset({new}))]
    status = ring_status(cluster, namespace, "jwt")
    assert status["lastWasEmergency"] is True
    assert EMERGENCY_ANNOTATION not in annotations(cluster, namespace)
    warning = wait_until(
        lambda: [e for e in events(cluster, namespace) if e[0] == "EmergencyRotation"],
        what="an EmergencyRotation event",
    )
    assert warning[0][1] == "Warning"
    assert f"removing {old} at once" in warning[0][2]
    assert current(cluster, namespace, "internal") == before["internal"]


def test_a_request_the_operator_cannot_act_on_is_refused_and_removed(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    before = idle(cluster, namespace)
    annotate(cluster, namespace, ROTATE_ANNOTATION, "everything")
    wait_until(
        lambda: ROTATE_ANNOTATION not in annotations(cluster, namespace),
        what="the annotation removed",
    )
    annotate(cluster, namespace, EMERGENCY_ANNOTATION, "jwt-20000101T000000Z-abcdef")
    wait_until(
        lambda: EMERGENCY_ANNOTATION not in annotations(cluster, namespace),
        what="the annotation removed",
    )
    ignored = wait_until(
        lambda: (
            [m for r, t, m in events(cluster, namespace) if r == "RotationRequestIgnored"]
            if len([e for e in events(cluster, namespace) if e[0] == "RotationRequestIgnored"]) == 2
            else None
        ),
        what="two RotationRequestIgnored warnings",
    )
    assert any("'everything' is not one of jwt, internal, all" in m for m in ignored)
    assert any("jwt-20000101T000000Z-abcdef is in neither keyring" in m for m in ignored)
    assert {ring: current(cluster, namespace, ring) for ring in SECRET} == before
    assert "RotationStarted" not in reasons(cluster, namespace)


class KeyService:
    """Stands in for a service pod's ``GET /internal/v1/keys``: reports what it is told to."""

    def __init__(self) -> None:
        self.report: dict[str, Any] = {}
        self.keys_presented: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.keys_presented.append(self.headers.get("X-Internal-Api-Key", ""))
                body = json.dumps(owner.report).encode()
                self.send_response(200 if self.path == "/internal/v1/keys" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def holds(self, jwt: Layout, internal: Layout) -> None:
        self.report = {
            "service": "auth",
            "jwt": {"active": jwt[0], "kids": sorted(jwt[1])},
            "internal": {"active": internal[0], "kids": sorted(internal[1])},
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def running_pod(cluster: Cluster, namespace: str, name: str, workload: str, port: int) -> None:
    """A pod of the chart's labels, reported running at 127.0.0.1 on ``port``, as a kubelet
    would (there is none here)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": workload,
                "app.kubernetes.io/instance": "shop",
                "app.kubernetes.io/component": "api",
            },
        },
        "spec": {
            "containers": [
                {
                    "name": workload,
                    "image": f"registry.example.com/checkout/{workload}:0.1.0",
                    "ports": [{"name": "http", "containerPort": port}],
                }
            ]
        },
    }
    cluster.create("Pod", namespace, pod)
    cluster.merge(
        "Pod", namespace, name, {"status": {"phase": "Running", "podIP": "127.0.0.1"}}, "status"
    )


def test_a_pod_that_has_not_loaded_the_new_key_holds_the_rotation(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    before = idle(cluster, namespace)
    secret = cluster.get("Secret", namespace, SECRET["internal"])
    assert secret is not None
    keys = parse_keyring(base64.b64decode(secret["data"]["keyring.json"]))[1]
    internal_key = encode_secret(keys[before["internal"][0]].secret)
    service = KeyService()
    try:
        service.holds(before["jwt"], before["internal"])
        running_pod(cluster, namespace, "shop-auth-7d9f-x2x4k", "auth", service.port)
        annotate(cluster, namespace, ROTATE_ANNOTATION, "internal")
        added = wait_until(
            lambda: len((ring := current(cluster, namespace, "internal"))[1]) == 2 and ring,
            what="the new key added",
        )
        (new,) = added[1] - before["internal"][1]
        # The pod still reports the old ring: well past the 1 s delay, nothing moves on.
        late = wait_until(
            lambda: (
                (c := cluster.condition(namespace, "SecretsRotated"))
                and c["reason"] == "PropagationOverdue"
                and c
            ),
            what="the rotation overdue",
        )
        assert "shop-auth-7d9f-x2x4k" in late["message"]
        time.sleep(1.0)
        assert current(cluster, namespace, "internal") == added
        status = ring_status(cluster, namespace, "internal")
        assert "still behind: shop-auth-7d9f-x2x4k" in status["step"]
        # It was asked with the internal ring's active key.
        assert set(service.keys_presented) == {internal_key}

        # The pod loads each ring the operator writes: the rotation follows its reports.
        def follow() -> bool:
            service.holds(before["jwt"], current(cluster, namespace, "internal"))
            return ring_status(cluster, namespace, "internal").get("rotations") == 1

        wait_until(follow, timeout=30, what="the rotation confirmed by the pod")
    finally:
        service.close()
    status = ring_status(cluster, namespace, "internal")
    assert status["lastConfirmedBy"] == "reports"
    assert status["activeKeyId"] == new
    wait_until(
        lambda: "PropagationOverdue" in reasons(cluster, namespace), what="an overdue warning"
    )


def test_the_storefronts_pods_are_never_asked_for_keys(
    cluster: Cluster, namespace: str, operator: RunningOperator
) -> None:
    """The storefront mounts no keyring: a running storefront pod (here one that would report
    the old ring, and so hold the rotation, if it were asked) is left out of the propagation."""
    before = idle(cluster, namespace)
    service = KeyService()
    try:
        service.holds(before["jwt"], before["internal"])
        running_pod(cluster, namespace, "shop-storefront-5c8d-q7w2m", "storefront", service.port)
        annotate(cluster, namespace, ROTATE_ANNOTATION, "internal")
        wait_until(
            lambda: ring_status(cluster, namespace, "internal").get("rotations") == 1,
            timeout=30,
            what="the rotation done without the storefront",
        )
    finally:
        service.close()
    assert service.keys_presented == []
    status = ring_status(cluster, namespace, "internal")
    assert status["lastConfirmedBy"] == "delay"  # no service pod here could be asked
    assert "PropagationOverdue" not in reasons(cluster, namespace)


def test_a_keyring_secret_moved_on_since_it_was_read_is_read_again_or_refused(
    cluster: Cluster, namespace: str, operator_config: OperatorConfig
) -> None:
    """The driver's store: state and ring in one patch under the resourceVersion read. A ring
    changed by someone else meanwhile is read again and the step retried; a state another
    driver moved on is a conflict for the caller."""
    keys = [generate_key("api-1")]
    secret = {
        "metadata": {"name": SECRET["internal"]},
        "data": {"keyring.json": base64.b64encode(dump_keyring("api-1", keys)).decode()},
    }
    cluster.create("Secret", namespace, secret)
    policy = RotationPolicy.for_internal(margin=0, propagation_delay=0, poll_interval=1)

    def hand_edit(patch: dict[str, Any]) -> None:
        cluster.merge("Secret", namespace, SECRET["internal"], patch)

    async def scenario() -> tuple[str, str]:
        kube = KubeClient(
            client_configuration(operator_config),
            field_manager="test",
            request_timeout=10,
            connect_timeout=5,
        )
        try:
            store = SecretRingStore(kube, namespace, SECRET["internal"], "internal")
            driver = RingDriver(store)
            stale = await store.read()
            begun = driver.start(stale, policy)
            hand_edit({"metadata": {"labels": {"edited": "by-hand"}}})
            step = await driver.step(begun, {})
            assert step.written is not None and step.state.new_kid in step.ring.view.kids
            # A second driver that read the Secret before the first one wrote its state.
            with pytest.raises(StoreConflict):
                await driver.step(driver.start(stale, policy), {})
            return str(step.state.new_kid), str(step.ring.version)
        finally:
            await kube.aclose()

    new, _ = asyncio.run(scenario())
    assert current(cluster, namespace, "internal") == ("api-1", frozenset({"api-1", new}))
    stored = saved_state(cluster, namespace, "internal")
    assert (stored.phase, stored.new_kid) == ("adding", new) and stored.added_at is not None
    written = cluster.get("Secret", namespace, SECRET["internal"])
    assert written is not None and written["metadata"]["labels"] == {"edited": "by-hand"}


def test_a_status_merge_patch_nulls_what_is_gone() -> None:
    current = {"jwt": {"phase": "adding", "newKeyId": "k2", "keyIds": ["k1", "k2"]}}
    wanted = {"jwt": {"phase": "idle", "keyIds": ["k2"]}, "schedule": "every 5 minutes"}
    assert merge_patch(current, wanted) == {
        "jwt": {"phase": "idle", "newKeyId": None, "keyIds": ["k2"]},
        "schedule": "every 5 minutes",
    }
    assert merge_patch(wanted, wanted) == {}


def test_the_rotation_settings_come_from_the_operator_charts_environment(charts: Helm) -> None:
    objects = charts.template(
        "checkout-operator",
        {
            "settings": {
                "rotationCheckIntervalSeconds": 15,
                "rotationPollIntervalSeconds": 3,
                "rotationMarginSeconds": 45,
                "rotationProbeTimeoutSeconds": 1.5,
            }
        },
    )
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    env = {
        e["name"]: e["value"]
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        if "value" in e
    }
    env["CHECKOUT_CHARTS_DIR"] = str(charts.charts)
    config = OperatorConfig.from_env(env)
    assert (
        config.rotation_check_interval,
        config.rotation_poll_interval,
        config.rotation_margin,
        config.rotation_probe_timeout,
    ) == (15, 3, 45, 1.5)

    defaults = OperatorConfig.from_env({"CHECKOUT_CHARTS_DIR": str(charts.charts)})
    assert (defaults.rotation_check_interval, defaults.rotation_margin) == (30, 30)
    with pytest.raises(ConfigError, match="CHECKOUT_ROTATION_MARGIN_SECONDS"):
        OperatorConfig.from_env(
            {"CHECKOUT_CHARTS_DIR": str(charts.charts), "CHECKOUT_ROTATION_MARGIN_SECONDS": "-1"}
        )


def test_what_the_request_annotations_ask_for() -> None:
    views = {
        "jwt": RingView(active="jwt-a", kids=("jwt-a", "jwt-b")),
        "internal": RingView(active="api-a", kids=("api-a",)),
    }
    assert read_request({ROTATE_ANNOTATION: " JWT "}, views).rotate == {"jwt"}
    assert read_request({ROTATE_ANNOTATION: "all"}, views).rotate == {"jwt", "internal"}
    assert read_request({"other": "x"}, views) == Request()
    both = read_request(
        {ROTATE_ANNOTATION: "sometime", EMERGENCY_ANNOTATION: "jwt-b, api-a,nope"}, views
    )
    assert both.rotate == frozenset()
    assert both.compromised == {"jwt": ("jwt-b",), "internal": ("api-a",)}
    assert both.present == (ROTATE_ANNOTATION, EMERGENCY_ANNOTATION)
    assert len(both.problems) == 2


def test_a_pod_is_asked_at_its_ip_and_http_port_once_it_runs() -> None:
    pod: dict[str, Any] = {
        "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": "10.1.2.3"},
    }
    assert pod_url(pod) == "http://10.1.2.3:8080"
    assert pod_url({**pod, "status": {"phase": "Running", "podIP": "fd00::7"}}) == (
        "http://[fd00::7]:8080"
    )
    assert pod_url({**pod, "status": {"phase": "Pending"}}) is None
    assert pod_url({"status": {"phase": "Running", "podIP": "10.1.2.3"}}) == "http://10.1.2.3:8000"


def test_a_new_key_removed_by_hand_fails_the_rotation_until_a_new_one_is_asked_for(
    cluster: Cluster, namespace: str, operator: RunningOperator, clock: Clock
) -> None:
    before = idle(cluster, namespace)
    old = before["jwt"][0]
    clock.freeze()
    annotate(cluster, namespace, ROTATE_ANNOTATION, "jwt")
    added = wait_until(
        lambda: len((ring := current(cluster, namespace, "jwt"))[1]) == 2 and ring,
        what="the new key added",
    )
    (lost,) = added[1] - {old}
    # Someone puts the old ring back by hand: still a ring a service accepts, without the new key.
    secret = cluster.get("Secret", namespace, SECRET["jwt"])
    assert secret is not None
    document = json.loads(base64.b64decode(secret["data"]["keyring.json"]))
    document["keys"] = [k for k in document["keys"] if k["kid"] != lost]
    encoded = base64.b64encode(json.dumps(document).encode()).decode()
    cluster.merge("Secret", namespace, SECRET["jwt"], {"data": {"keyring.json": encoded}})

    failed = wait_until(
        lambda: (
            (c := cluster.condition(namespace, "SecretsRotated"))
            and c["status"] == "False"
            and c["reason"] == "RotationFailed"
            and c
        ),
        what="SecretsRotated False, RotationFailed",
    )
    assert f"the new key {lost} disappeared from the ring" in failed["message"]
    status = ring_status(cluster, namespace, "jwt")
    assert status["phase"] == "failed" and lost in status["error"]
    assert "nextRotation" not in status
    wait_until(
        lambda: [e for e in events(cluster, namespace) if e[:2] == ("RotationFailed", "Warning")],
        what="a RotationFailed warning",
    )
    # The schedule does not retry it on its own, even once due.
    clock.release()
    clock.advance(1441 * 60)
    time.sleep(1.0)
    assert current(cluster, namespace, "jwt") == (old, frozenset({old}))

    annotate(cluster, namespace, ROTATE_ANNOTATION, "jwt")
    promoted = wait_until(
        lambda: (s := ring_status(cluster, namespace, "jwt")).get("waitUntil") and s,
        what="a new rotation promoted",
    )
    assert promoted["newKeyId"] not in (old, lost)  # a key id is never used twice
    clock.advance(JWT_WAIT)
    wait_until(
        lambda: ring_status(cluster, namespace, "jwt").get("phase") == "idle",
        what="the new rotation done",
    )
    assert current(cluster, namespace, "jwt") == (
        promoted["newKeyId"],
        frozenset({promoted["newKeyId"]}),
    )
    assert cluster.condition(namespace, "SecretsRotated")["status"] == "True"  # type: ignore[index]
