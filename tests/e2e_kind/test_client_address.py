"""Client addresses behind the ingress, on the real cluster: the sample Checkout trusts Traefik's
pods (`ingress.trustedProxies`), Traefik trusts no one's X-Forwarded-For, so the sign-in limit per
client counts real clients. Two client pods (two real source addresses) send their sign-ins to
Traefik's entry point: each has its own budget, and neither can change its address by sending
X-Forwarded-For itself - not to escape its budget, not to spend another client's."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.cluster.conftest import RESTRICTED, python_in_pod
from tests.e2e_kind.conftest import Platform

pytestmark = pytest.mark.e2e

# Sign-ins with wrong passwords (each to a new email, so only the per-client limit counts) until the
# first 429, at most two windows' worth of the auth chart's default limit (30 a minute). Prints
# the statuses and the 429's Retry-After as JSON.
SIGN_INS = """
import json, sys, urllib.error, urllib.request, uuid
url, host, count, forwarded = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
codes, retry_after = [], None
for _ in range(count):
    body = json.dumps({"email": f"nobody-{uuid.uuid4().hex[:10]}@example.com",
                       "password": "not the password"}).encode()
    headers = {"Host": host, "Content-Type": "application/json"}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    request = urllib.request.Request(url + "/api/v1/auth/token", body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            codes.append(answer.status)
    except urllib.error.HTTPError as error:
        codes.append(error.code)
        if error.code == 429:
            retry_after = int(error.headers.get("Retry-After", "0"))
            break
print(json.dumps({"codes": codes, "retryAfter": retry_after}))
"""


def client_pod(platform: Platform, name: str) -> dict[str, Any]:
    cluster = platform.cluster
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "signin-client"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "client",
                    "image": cluster.python_image,
                    "imagePullPolicy": cluster.pull_policy,
                    "command": ["python", "-c", "import time; time.sleep(1800)"],
                    # Small requests: the node's two CPUs are mostly requested by the platforms
                    # (a CI run saw one client pod Pending on "Insufficient cpu").
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "32Mi"},
                        "limits": {"cpu": "200m", "memory": "64Mi"},
                    },
                    "securityContext": RESTRICTED,
                }
            ],
        },
    }


def traefik_entry_point(platform: Platform) -> str:
    """Traefik's web entry point, by pod address (what kind's hostPort 80 leads to)."""
    pods = platform.cluster.get("pods", "-n", "traefik", "-l", "app.kubernetes.io/name=traefik")
    running = [p for p in pods["items"] if p.get("status", {}).get("podIP")]
    assert running, "no Traefik pod with an address"
    port = next(
        p["containerPort"]
        for c in running[0]["spec"]["containers"]
        for p in c.get("ports", [])
        if p.get("hostPort") == 80
    )
    return f"http://{running[0]['status']['podIP']}:{port}"


def sign_ins(
    platform: Platform, namespace: str, pod: str, url: str, count: int, forwarded: str = ""
) -> dict[str, Any]:
    code = f"import sys; sys.argv = ['x', *{[url, platform.host, str(count), forwarded]!r}]\n"
    result: dict[str, Any] = json.loads(
        python_in_pod(platform.cluster, namespace, pod, code + SIGN_INS)
    )
    return result


def test_two_clients_through_the_ingress_have_separate_sign_in_budgets(
    platform: Platform, namespace: str
) -> None:
    cluster = platform.cluster
    spec = platform.checkout()["spec"]
    assert spec["ingress"].get("trustedProxies"), "the sample trusts its ingress controller"
    cluster.apply([client_pod(platform, "client-a"), client_pod(platform, "client-b")], namespace)
    cluster.wait_for(
        lambda: all(
            p.get("status", {}).get("phase") == "Running"
            for p in cluster.get("pods", "-n", namespace, "-l", "app=signin-client")["items"]
        ),
        timeout=120,
        what="the two client pods running",
    )
    addresses = {
        p["metadata"]["name"]: p["status"]["podIP"]
        for p in cluster.get("pods", "-n", namespace, "-l", "app=signin-client")["items"]
    }
    assert len(set(addresses.values())) == 2, addresses
    url = traefik_entry_point(platform)

    # Client A spends its budget (the limit counts in fixed windows: when the window is about to
    # end, wait for the next one, so the rest of the test runs inside one window).
    for _ in range(3):
        spent = sign_ins(platform, namespace, "client-a", url, 61)
        assert spent["codes"][-1] == 429, f"client A never reached its limit: {spent}"
        assert set(spent["codes"][:-1]) <= {401}, spent
        if spent["retryAfter"] >= 20:
            break
        time.sleep(spent["retryAfter"] + 1)
    else:
        pytest.fail(f"no window with 20 s left after client A's limit: {spent}")
    began = time.monotonic()

    # Client B, another address through the same ingress, still has its whole budget.
    assert sign_ins(platform, namespace, "client-b", url, 1)["codes"] == [401]
    # Client A cannot escape its budget by naming another address ...
    fresh = f"203.0.113.{uuid.uuid4().int % 200 + 1}"
    assert sign_ins(platform, namespace, "client-a", url, 1, forwarded=fresh)["codes"] == [429]
    # ... and client B cannot be counted as client A (or spend A's budget) by naming A's address.
    as_a = sign_ins(platform, namespace, "client-b", url, 1, forwarded=addresses["client-a"])
    assert as_a["codes"] == [401]
    assert time.monotonic() - began < 20, "the checks ran past the rate-limit window"
