"""Full rotations of keyring files under running services (auth and product on real sockets),
with traffic throughout: no request fails, old tokens keep working until they expire, new tokens
carry the new kid, and the old key is gone at the end. Emergency removal breaks old tokens."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx
import pytest

from services.keys.driver import Prober, presented_keys, ring_reports
from services.keys.keyring import (
    KeyRing,
    KeyringDocument,
    generate_key,
    read_keyring_document,
    write_keyring_document,
)
from services.keys.report import RingSeen
from services.keys.rotation import RotationState
from services.local.rotation import FileRotation, RotationFailed, state_path
from tests.infra.servers import free_port_url
from tests.rotation.conftest import TOKEN_TTL, Pair, Traffic, expiry_of, kid_of, running

REPO = Path(__file__).resolve().parents[2]


def step_time(rotation: FileRotation, step: str) -> float:
    return next(at for at, name, _ in rotation.events if name == step)


async def test_jwt_rotation_under_traffic(pair: Pair, traffic: Traffic) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        old_token, admin_id = await pair.sign_in(client)
        assert kid_of(old_token) == "jwt-1"
        async with running(traffic):
            rotation = pair.rotation("jwt")
            state = await asyncio.wait_for(rotation.run(), 60)
        new = state.last.active if state.last else ""

        assert traffic.failures == [], traffic.failures[:5]
        assert traffic.sent > 50 and traffic.internal_ok > 5
        # Tokens were signed with the old key, then with the new one, never with anything else.
        assert traffic.issued_kids[0] == "jwt-1" and traffic.issued_kids[-1] == new
        assert set(traffic.issued_kids) == {"jwt-1", new}
        # Old tokens were used successfully after the new key had become active.
        promoted = step_time(rotation, "promote")
        assert any(kid == "jwt-1" and at > promoted + 1 for at, kid in traffic.token_uses)
        # The old key left only after the longest token lifetime + leeway + margin.
        retired = step_time(rotation, "retire")
        assert retired - promoted >= TOKEN_TTL + 5 + 1
        assert expiry_of(old_token) < retired

        assert [e.kid for e in pair.ring("jwt").keys] == [new]
        key = KeyRing(pair.keys_dir / "internal.json").presentable_active()
        for report in await pair.reports(client, key):
            assert report["jwt"]["kids"] == [new] and report["jwt"]["active"] == new
        # The token issued before the rotation is refused now (it expired; its key is gone too).
        response = await client.get(
            f"{pair.auth.url}/api/v1/users/{admin_id}",
            headers={"Authorization": f"Bearer {old_token}"},
        )
        assert response.status_code == 401
        fresh, _ = await pair.sign_in(client)
        assert kid_of(fresh) == new


async def test_internal_key_rotation_under_traffic(pair: Pair, traffic: Traffic) -> None:
    old_key = KeyRing(pair.keys_dir / "internal.json").presentable_active()
    async with running(traffic):
        rotation = pair.rotation("internal")
        state = await asyncio.wait_for(rotation.run(), 60)
        # An API-key rotation takes seconds; on a loaded machine the traffic loop may have gone
        # round only a few times, so keep it going until calls with the new key have been made.
        during = traffic.internal_ok
        deadline = time.monotonic() + 30
        while traffic.internal_ok < during + 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    new = state.last.active if state.last else ""
    assert new.startswith("api-") and state.last and state.last.confirmed_by == "reports"

    assert traffic.failures == [], traffic.failures[:5]
    assert traffic.internal_ok >= during + 3 and during >= 1
    assert [e.kid for e in pair.ring("internal").keys] == [new]
    new_key = KeyRing(pair.keys_dir / "internal.json").presentable_active()
    async with httpx.AsyncClient(timeout=10) as client:
        for report in await pair.reports(client, new_key):
            assert report["internal"] == {
                "active": new,
                "kids": [new],
                "loadedAt": report["internal"]["loadedAt"],
            }
        for url in pair.urls:  # the old key is refused everywhere now
            response = await client.get(
                url + "/internal/v1/keys", headers={"X-Internal-Api-Key": old_key}
            )
            assert response.status_code == 401


async def test_emergency_removal_makes_old_tokens_fail_at_once(pair: Pair) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        old_token, admin_id = await pair.sign_in(client)
        headers = {"Authorization": f"Bearer {old_token}"}
        user_url = f"{pair.auth.url}/api/v1/users/{admin_id}"
        product_url = f"{pair.product.url}/api/v1/products/{pair.product_id}"
        assert (await client.get(user_url, headers=headers)).status_code == 200
        lines: list[str] = []
        started = time.monotonic()
        state = await asyncio.wait_for(
            pair.rotation("jwt", lines=lines).run(emergency=["jwt-1"]), 30
        )
        assert time.monotonic() - started < 5  # no waiting for token lifetimes
        assert expiry_of(old_token) > time.time()  # still unexpired, yet:
        assert (await client.get(user_url, headers=headers)).status_code == 401
        response = await client.patch(product_url, headers=headers, json={"priceCents": 7})
        assert response.status_code == 401
        assert state.last is not None and state.last.emergency
        assert state.last.removed == ("jwt-1",)
        fresh, _ = await pair.sign_in(client)
        assert kid_of(fresh) == state.last.active != "jwt-1"
        assert any("emergency removal of jwt-1" in line for line in lines)


async def test_emergency_removal_of_the_internal_key(pair: Pair) -> None:
    old_key = KeyRing(pair.keys_dir / "internal.json").presentable_active()
    state = await asyncio.wait_for(pair.rotation("internal").run(emergency=["api-1"]), 30)
    assert state.last is not None and state.last.emergency
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(
            pair.product.url + "/internal/v1/keys", headers={"X-Internal-Api-Key": old_key}
        )
        assert response.status_code == 401
        new_key = KeyRing(pair.keys_dir / "internal.json").presentable_active()
        response = await client.get(
            pair.product.url + "/internal/v1/keys", headers={"X-Internal-Api-Key": new_key}
        )
        assert response.json()["internal"]["kids"] == [state.last.active]


async def test_an_interrupted_rotation_resumes_with_the_same_key(pair: Pair) -> None:
    first = pair.rotation("jwt")
    task = asyncio.create_task(first.run())
    # Stop the driver while it waits for old tokens to expire (the new key is active by then).
    for _ in range(200):
        await asyncio.sleep(0.05)
        if any(step == "promote" for _, step, _ in first.events):
            break
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stored = RotationState.from_json(state_path(pair.keys_dir, "jwt").read_bytes())
    assert stored.phase == "promoting"
    assert pair.ring("jwt").active == stored.new_kid

    lines: list[str] = []
    state = await asyncio.wait_for(pair.rotation("jwt", lines=lines).run(), 60)
    assert any("resuming" in line for line in lines)
    assert state.last is not None and state.last.active == stored.new_kid
    assert [e.kid for e in pair.ring("jwt").keys] == [stored.new_kid]


async def test_a_second_rotation_of_the_same_ring_is_refused_while_one_runs(pair: Pair) -> None:
    first = pair.rotation("jwt")
    task = asyncio.create_task(first.run())
    await asyncio.sleep(0.3)
    with pytest.raises(RotationFailed, match="another rotation"):
        await pair.rotation("jwt").run()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cli_rotates_and_falls_back_to_the_delay_for_an_unreachable_service(
    pair: Pair,
) -> None:
    dead = free_port_url()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.local.rotation",
        "--keys-dir",
        str(pair.keys_dir),
        "--ring",
        "internal",
        "--service-url",
        pair.auth.url,
        "--service-url",
        pair.product.url,
        "--service-url",
        dead,
        "--margin",
        "0.5",
        "--propagation-delay",
        "1",
        "--poll-interval",
        "0.1",
        "--timeout",
        "60",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    text = out.decode()
    assert process.returncode == 0, text
    new = pair.ring("internal").active
    assert [e.kid for e in pair.ring("internal").keys] == [new]
    assert f"internal: rotation started; new active key {new}" in text
    assert f"unreachable: {dead}" in text
    assert "assumed after the propagation delay" in text
    assert f"ring now holds {new} (active {new})" in text


async def test_cli_reports_a_bad_emergency_kid(pair: Pair) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.local.rotation",
        "--keys-dir",
        str(pair.keys_dir),
        "--ring",
        "jwt",
        "--emergency",
        "jwt-nope",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "not in the jwt ring: jwt-nope" in out.decode()


async def test_the_prober_falls_back_to_older_keys_and_reports_a_service_that_refuses_all(
    pair: Pair,
) -> None:
    current = pair.ring("internal")
    unknown = generate_key("api-unknown")
    # A ring whose active key the services have not loaded, but which still holds one they have.
    ahead = KeyringDocument(active="api-unknown", keys=[*current.keys, unknown])
    async with Prober.open(2.0) as prober:
        report = await prober.one(pair.product.url, presented_keys(ahead))
        assert report is not None
        seen = report.ring("internal")
        assert (seen.active, seen.kids) == ("api-1", ("api-1",))
        # A ring with no key the service accepts: it answers, so it is behind, not unreachable.
        stranger = KeyringDocument(active="api-unknown", keys=[unknown])
        dead = free_port_url()
        targets = {pair.product.url: pair.product.url, dead: dead, "not running": None}
        reports = ring_reports(await prober.ask(targets, presented_keys(stranger)), "internal")
    assert reports == {pair.product.url: RingSeen(active=None), dead: None, "not running": None}


async def test_a_new_key_removed_by_hand_fails_the_rotation_instead_of_being_made_again(
    pair: Pair,
) -> None:
    rotation = pair.rotation("internal")
    real_sleep = rotation.sleep
    first_secret: dict[str, str] = {}

    async def tamper_after_the_add(seconds: float) -> None:
        document = read_keyring_document(rotation.ring_file)
        if len(document.keys) == 2 and not first_secret:
            old, new = document.keys
            first_secret[new.kid] = new.secret
            # Someone puts the old ring back by hand, dropping the key just added.
            write_keyring_document(rotation.ring_file, KeyringDocument(active=old.kid, keys=[old]))
        await real_sleep(seconds)

    rotation.sleep = tamper_after_the_add
    with pytest.raises(RotationFailed):
        await asyncio.wait_for(rotation.run(), 30)
    assert first_secret, "the rotation never added a key"
    # The vanished key id was not made again with another secret.
    kids = [entry.kid for entry in read_keyring_document(rotation.ring_file).keys]
    assert not set(first_secret) & set(kids)
