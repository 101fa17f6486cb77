"""Keyrings are re-read when their file changes, keep the last good ring, and compare keys
in constant time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.keys.keyring import KeyEntry, KeyRing, KeyringError, generate_key
from services.kit.tokens import InvalidToken, TokenService
from tests.infra.keys import write_ring


def ring_at(tmp_path: Path, active: str, entries: list[KeyEntry]) -> Path:
    path = tmp_path / "keyring.json"
    write_ring(path, active, entries)
    return path


def test_rotation_steps_are_seen_without_restart(tmp_path: Path) -> None:
    k1, k2 = generate_key("k1"), generate_key("k2")
    path = ring_at(tmp_path, "k1", [k1])
    ring = KeyRing(path, check_interval=0)
    tokens = TokenService(ring, issuer="i", audience="a")
    old = tokens.issue("u1", "customer", 600)
    assert old.kid == "k1"
    write_ring(path, "k1", [k1, k2])  # step 1: new key, verify-only
    assert ring.kids() == ["k1", "k2"] and ring.active_kid == "k1"
    write_ring(path, "k2", [k1, k2])  # step 2: promote
    new = tokens.issue("u1", "customer", 600)
    assert new.kid == "k2"
    assert tokens.verify(old.token).user_id == "u1"  # old tokens still accepted
    write_ring(path, "k2", [k2])  # step 3: retire the old key
    assert tokens.verify(new.token).kid == "k2"
    with pytest.raises(InvalidToken, match="unknown key id"):
        tokens.verify(old.token)


def test_a_bad_update_keeps_the_last_good_ring(tmp_path: Path) -> None:
    k1 = generate_key("k1")
    path = ring_at(tmp_path, "k1", [k1])
    ring = KeyRing(path, check_interval=0)
    assert ring.active_kid == "k1"
    path.write_text('{"active": "k9", "keys": []}')
    assert ring.active_kid == "k1"
    assert ring.last_error is not None
    os.remove(path)
    assert ring.active_kid == "k1"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "invalid"),
        ('{"active": "x", "keys": [{"kid": "y", "secret": "' + "A" * 43 + '"}]}', "not in"),
        ('{"active": "y", "keys": [{"kid": "y", "secret": "c2hvcnQ"}]}', "shorter"),
        (
            '{"active": "y", "keys": [{"kid": "y", "secret": "' + "A" * 43 + '"},'
            ' {"kid": "y", "secret": "' + "B" * 43 + '"}]}',
            "twice",
        ),
    ],
)
def test_invalid_rings_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "keyring.json"
    path.write_text(content)
    ring = KeyRing(path, check_interval=0)
    with pytest.raises(KeyringError):
        _ = ring.active
    assert message in (ring.last_error or "")


def test_api_keys_match_any_key_in_the_ring(tmp_path: Path) -> None:
    k1, k2 = generate_key("k1"), generate_key("k2")
    ring = KeyRing(ring_at(tmp_path, "k2", [k1, k2]), check_interval=0)
    assert ring.matches_any(k1.secret) and ring.matches_any(k2.secret)
    assert ring.presentable_active() == k2.secret
    assert not ring.matches_any(k1.secret[:-1] + ("A" if k1.secret[-1] != "A" else "B"))
    assert not ring.matches_any("")
    assert not ring.matches_any("ünïcode")
