"""The rotation driver over a store kept in memory: state and ring stored together, the new key
recorded as added by the write that adds it, a conflict read again and retried, a key id never
made twice. The stores of the operator and local mode are exercised by tests/operator and
tests/rotation."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from services.keys.driver import RingDriver, StoreConflict, StoredRing
from services.keys.keyring import KeyringDocument, generate_key
from services.keys.report import KeyReport, RingName, RingSeen
from services.keys.rotation import RotationError, RotationPolicy, RotationState, new_state

T0 = 1_800_000_000.0
API = RotationPolicy.for_internal(margin=0, propagation_delay=30, poll_interval=1)


@dataclass
class MemoryStore:
    """A ring and its state under a version number, as a Secret holds them."""

    ring: RingName
    document: KeyringDocument
    state: bytes | None = None
    version: int = 1
    writes: list[tuple[bytes, KeyringDocument | None]] = field(default_factory=list)
    conflicts: int = 0
    """How many of the next writes are refused as if someone else had written first."""

    async def read(self) -> StoredRing:
        state = RotationState.from_json(self.state) if self.state else new_state(self.ring)
        return StoredRing(self.ring, self.document, state, self.state, str(self.version))

    async def write(
        self, current: StoredRing, state: RotationState, document: KeyringDocument | None
    ) -> StoredRing:
        if self.conflicts:
            self.conflicts -= 1
            self.version += 1
        if current.version != str(self.version):
            raise StoreConflict("moved on")
        self.version += 1
        self.state = state.to_json()
        self.document = document or self.document
        self.writes.append((self.state, document))
        return await self.read()


def store(*kids: str) -> MemoryStore:
    return MemoryStore("internal", KeyringDocument(kids[-1], [generate_key(k) for k in kids]))


def loaded(ring: StoredRing) -> dict[str, KeyReport | None]:
    seen = RingSeen(active=ring.document.active, kids=ring.view.kids)
    return {"auth": KeyReport(service="auth", jwt=seen, internal=seen)}


async def test_a_rotation_stores_state_and_ring_together_and_ends_with_the_new_key() -> None:
    memory = store("api-1")
    driver = RingDriver(memory, clock=lambda: T0)
    current = driver.start(await memory.read(), API)
    assert memory.writes == []  # begun in memory: the first step stores it with the ring
    new = current.state.new_kid
    steps = []
    for _ in range(10):
        step = await driver.step(current, loaded(current))
        steps.append(step.decision.step)
        current = step.ring
        if step.decision.check_after is None:
            break
    assert steps[-1] == "done" and current.state.last is not None
    assert current.view == (await memory.read()).view
    assert [e.kid for e in memory.document.keys] == [new]
    # The write that added the new key said so in the state it stored with it.
    state, document = memory.writes[0]
    assert document is not None and new in [e.kid for e in document.keys]
    assert RotationState.from_json(state).added_at == T0


async def test_an_idle_ring_that_never_rotated_is_not_written() -> None:
    memory = store("api-1")
    step = await RingDriver(memory).step(await memory.read())
    assert step.decision.step == "idle" and memory.writes == []


async def test_a_ring_changed_by_someone_else_is_read_again_and_the_step_retried() -> None:
    memory = store("api-1")
    driver = RingDriver(memory, clock=lambda: T0)
    current = driver.start(await memory.read(), API)
    memory.conflicts = 1
    step = await driver.step(current, {})
    # The start held in memory survived the retry: the new key is in the ring, once.
    assert step.written is not None and step.state.new_kid in step.ring.view.kids
    assert len(memory.writes) == 1


async def test_a_state_moved_on_by_another_driver_is_a_conflict_for_the_caller() -> None:
    memory = store("api-1")
    first = RingDriver(memory, clock=lambda: T0)
    stale = await memory.read()
    await first.step(first.start(await memory.read(), API), {})
    with pytest.raises(StoreConflict):
        await first.step(first.start(stale, API), {})
    assert len(memory.writes) == 1


async def test_the_targets_are_probed_only_while_a_rotation_is_in_progress() -> None:
    memory = store("api-1")
    asked: list[int] = []

    async def probe() -> dict[str, KeyReport | None]:
        asked.append(1)
        return {"auth": None}

    driver = RingDriver(memory, probe=probe, clock=lambda: T0)
    await driver.step(await memory.read())
    assert asked == []
    step = await driver.step(driver.start(await memory.read(), API))
    assert asked == [1]
    assert step.decision.step == "write"
    step = await driver.step(step.ring)
    assert step.decision.unreachable == ("auth",)


async def test_a_key_id_already_in_the_ring_is_never_made_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    memory = store("api-1")
    driver = RingDriver(memory, clock=lambda: T0)
    kid = driver.start(await memory.read(), API).state.new_kid
    assert kid is not None
    # Every nonce drawn gives an id the ring already holds: no rotation starts.
    memory.document = KeyringDocument(kid, [generate_key(kid)])
    monkeypatch.setattr("services.keys.driver.secrets.token_hex", lambda _: kid.rsplit("-", 1)[1])
    with pytest.raises(RotationError, match="unused key id"):
        driver.start(await memory.read(), API)
