"""Deleted users, as the token check sees them: remembered for good once seen deleted, a user
found not deleted believed for ALIVE_TTL_SECONDS, a deletion recorded here known at once."""

from __future__ import annotations

from typing import Any

import pytest

from services.kit import revocation
from services.kit.revocation import DeletedUsers


class Counting:
    """The deleted_users collection, counting the commands sent to it."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.commands = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.collection, name)
        if not callable(attribute):
            return attribute

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.commands += 1
            return await attribute(*args, **kwargs)

        return counted


async def test_a_user_found_alive_is_believed_briefly_and_a_deletion_here_at_once(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = DeletedUsers(db)
    counting = users.users = Counting(users.users)  # type: ignore[assignment]
    assert await users.recently_contains("u1") is False
    assert await users.recently_contains("u1") is False
    assert counting.commands == 1  # the second answer came from memory
    # Deleted through this process (the cascade reached this replica): known at once.
    await users.record("u1")
    assert await users.recently_contains("u1") is True
    # Deleted through another replica: this one believes its last answer for the TTL only.
    other = DeletedUsers(db)
    assert await users.recently_contains("u2") is False
    await other.record("u2")
    assert await users.recently_contains("u2") is False
    monkeypatch.setattr(revocation, "ALIVE_TTL_SECONDS", 0.0)
    assert await users.recently_contains("u2") is True
    before = counting.commands
    assert await users.recently_contains("u2") is True
    assert counting.commands == before  # once deleted, always deleted: no more reads
    # The uncached check always reads.
    assert await other.contains("u3") is False
    await users.record("u3")
    assert await other.contains("u3") is True


async def test_memory_is_bounded(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(revocation, "MAX_REMEMBERED", 3)
    users = DeletedUsers(db)
    for n in range(5):
        await users.recently_contains(f"alive-{n}")
        await users.record(f"gone-{n}")
    assert len(users._alive) <= 3 and len(users._deleted) <= 3
