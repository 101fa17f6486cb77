"""The rotation state machine, driven step by step against a simulated ring and services.

Every step goes through JSON (as a driver stores it) so each test also proves that a rotation
survives being persisted and read back.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field

import msgspec
import pytest

from services.keys.keyring import KeyEntry, KeyringDocument, generate_key
from services.keys.report import KeyReport, RingSeen, decode_key_report
from services.keys.rotation import (
    Decision,
    KeyIdReused,
    RingConflict,
    RingLayout,
    RingView,
    RotationError,
    RotationInProgress,
    RotationPolicy,
    RotationState,
    apply_layout,
    kid_time,
    make_kid,
    new_state,
    plan_next,
    start_emergency,
    start_rotation,
)

T0 = 1_800_000_000.0
JWT = RotationPolicy.for_jwt(60, leeway_seconds=5, margin=10, propagation_delay=30, poll_interval=1)
API = RotationPolicy.for_internal(margin=10, propagation_delay=30, poll_interval=1)
KID_SHAPE = re.compile(r"^(jwt|api)-\d{8}T\d{6}Z-[a-z0-9]{4,16}$")


@dataclass
class World:
    """A stored ring, the services' loaded copies of it, and a clock."""

    doc: KeyringDocument
    services: dict[str, RingSeen | None]
    now: float = T0
    created: list[str] = field(default_factory=list)
    writes: list[RingLayout] = field(default_factory=list)

    @classmethod
    def with_ring(cls, *kids: str, active: str | None = None, services: int = 2) -> World:
        doc = KeyringDocument(active=active or kids[-1], keys=[generate_key(k) for k in kids])
        seen = RingSeen(active=doc.active, kids=tuple(kids))
        names = ["auth", "product", "cart", "order"][:services]
        return cls(doc=doc, services=dict.fromkeys(names, seen))

    @property
    def ring(self) -> RingView:
        return RingView.of(self.doc)

    def make_key(self, kid: str) -> KeyEntry:
        self.created.append(kid)
        return generate_key(kid)

    def apply(self, decision: Decision) -> None:
        if decision.write is not None:
            self.writes.append(decision.write)
            self.doc = apply_layout(self.doc, decision.write, self.make_key)

    def load(self, *names: str) -> None:
        """These services load the stored ring (all reachable ones when no name is given)."""
        for name in names or [n for n, seen in self.services.items() if seen is not None]:
            self.services[name] = RingSeen(active=self.doc.active, kids=self.ring.kids)

    def step(self, state: RotationState) -> Decision:
        """Plan the next step and write what it asks for to the ring."""
        decision = self.plan(state)
        self.apply(decision)
        return decision

    def plan(self, state: RotationState) -> Decision:
        decision = plan_next(state, self.ring, self.now, dict(self.services))
        # Every decision is persisted as JSON and read back, as a driver does.
        stored = RotationState.from_json(decision.state.to_json())
        assert stored == decision.state
        return msgspec.structs.replace(decision, state=stored)


def drive(
    world: World, state: RotationState, *, load: bool = True, max_steps: int = 200
) -> tuple[RotationState, list[Decision]]:
    """Run a rotation to its end: persist, write, let services load, sleep as told."""
    decisions: list[Decision] = []
    for _ in range(max_steps):
        decision = world.plan(state)
        decisions.append(decision)
        state = decision.state
        world.apply(decision)
        if load:
            world.load()
        if decision.check_after is None:
            return state, decisions
        world.now += decision.check_after
    raise AssertionError(f"no end after {max_steps} steps: {[d.step for d in decisions]}")


def steps(decisions: list[Decision]) -> list[str]:
    return [d.step for d in decisions if d.step != "wait"]


def begin(world: World, ring: str = "jwt", nonce: str = "a1b2c3") -> RotationState:
    policy = JWT if ring == "jwt" else API
    return start_rotation(new_state(ring), world.ring, world.now, nonce, policy)  # type: ignore[arg-type]


# --- a normal rotation ---------------------------------------------------------------------


def test_full_rotation_adds_promotes_then_retires() -> None:
    world = World.with_ring("jwt-old")
    state = begin(world)
    new = state.new_kid
    assert new is not None and KID_SHAPE.match(new)
    assert state.phase == "adding" and state.retiring == ("jwt-old",)

    state, decisions = drive(world, state)

    assert steps(decisions) == ["write", "promote", "retire", "done"]
    add, promote, retire = world.writes
    assert add == RingLayout(active="jwt-old", keep=("jwt-old",), add=(new,))
    assert promote == RingLayout(active=new, keep=("jwt-old", new))
    assert retire == RingLayout(active=new, keep=(new,))
    assert world.ring == RingView(active=new, kids=(new,))
    assert world.created == [new]
    assert state.phase == "idle" and state.rotations == 1 and state.new_kid is None
    assert state.last is not None
    assert state.last.active == new and state.last.removed == ("jwt-old",)
    assert state.last.confirmed_by == "reports" and not state.last.emergency
    events = [d.event for d in decisions if d.event]
    assert len(events) == 3 and "making it active" in events[0] and "done" in events[-1]


def test_old_key_is_kept_for_the_credential_lifetime_plus_margin_after_promotion() -> None:
    world = World.with_ring("jwt-old")
    _, decisions = drive(world, begin(world))
    promote = next(i for i, d in enumerate(decisions) if d.step == "promote")
    # The promotion is confirmed on the next call (every service already loaded it).
    confirmed = decisions[promote + 1].state.confirmed_at
    assert confirmed is not None
    retire = next(d for d in decisions if d.step == "retire")
    retired_at = retire.state.phase_since
    assert retired_at is not None
    assert retired_at >= confirmed + 60 + 5 + 10
    # While waiting, it says what for and when to look again.
    waits = [d for d in decisions[promote + 1 :] if d.step == "wait"]
    assert waits and "to expire" in waits[0].waiting_for
    assert waits[0].check_after == pytest.approx(75)


def test_promotion_waits_until_every_service_has_loaded_the_new_key() -> None:
    world = World.with_ring("jwt-old")
    state = begin(world)
    decision = world.step(state)  # write the new key
    state = decision.state
    world.load("auth")  # product has not re-read its file yet
    for _ in range(5):
        decision = world.plan(state)
        state = decision.state
        assert decision.step == "wait" and decision.write is None
        assert decision.lagging == ("product",) and "product" in decision.waiting_for
        assert decision.check_after == 1
        world.now += 1
    world.load("product")
    decision = world.plan(state)
    assert decision.step == "promote"
    assert decision.write is not None and decision.write.active == state.new_kid


def test_a_reachable_service_that_lags_is_waited_for_even_past_the_delay() -> None:
    world = World.with_ring("api-old")
    state = begin(world, "internal")
    decision = world.step(state)
    state = decision.state
    world.load("auth")
    world.now += 31
    decision = world.plan(state)
    state = decision.state
    world.now += 40
    decision = world.plan(state)
    assert decision.step == "wait" and decision.overdue and decision.lagging == ("product",)
    world.load("product")
    decision = world.plan(decision.state)
    assert decision.step == "promote" and not decision.overdue


def test_a_service_without_a_loaded_ring_counts_as_lagging() -> None:
    world = World.with_ring("jwt-old")
    state = begin(world)
    decision = world.step(state)
    world.load("auth")
    world.services["product"] = RingSeen(active=None, kids=())  # its keyring failed to load
    world.now += 100
    decision = world.plan(decision.state)
    assert decision.step == "wait" and decision.lagging == ("product",)


# --- propagation fallback --------------------------------------------------------------------


def test_unreachable_services_are_assumed_to_have_loaded_after_the_propagation_delay() -> None:
    world = World.with_ring("jwt-old")
    world.services["product"] = None
    state = begin(world)
    decision = world.step(state)
    world.load()
    state = decision.state
    decision = world.plan(state)
    assert decision.step == "wait" and decision.unreachable == ("product",)
    assert not decision.lagging and "unreachable" in decision.waiting_for
    applied = decision.state.applied_at
    assert applied is not None
    state, decisions = drive(world, decision.state)
    promote = next(d for d in decisions if d.step == "promote")
    assert promote.state.phase_since is not None
    assert promote.state.phase_since >= applied + 30
    assert steps(decisions) == ["promote", "retire", "done"]
    assert state.last is not None and state.last.confirmed_by == "delay"


def test_without_any_reports_every_step_waits_the_propagation_delay() -> None:
    world = World.with_ring("api-old")
    world.services.clear()
    state, decisions = drive(world, begin(world, "internal"))
    assert steps(decisions) == ["write", "promote", "retire", "done"]
    times = {d.step: d.state.phase_since for d in decisions if d.step in ("promote", "retire")}
    assert times["promote"] == T0 + 30
    # promotion written at T0+30, assumed loaded at T0+60, then margin 10 (API keys: no lifetime)
    assert times["retire"] == T0 + 30 + 30 + 10
    assert state.last is not None and state.last.confirmed_by == "delay"
    assert world.ring.kids == (state.last.active,)


def test_a_service_that_comes_back_is_waited_for_again() -> None:
    world = World.with_ring("jwt-old")
    world.services["product"] = None
    state = begin(world)
    decision = world.step(state)
    world.load()
    world.now += 5
    # product is back, with the ring it loaded before the write: it must now be waited for.
    world.services["product"] = RingSeen(active="jwt-old", kids=("jwt-old",))
    world.now += 30
    decision = world.plan(decision.state)
    assert decision.step == "wait" and decision.lagging == ("product",)


# --- resuming after a restart ----------------------------------------------------------------


@pytest.mark.parametrize("crash_at", range(6))
def test_a_rotation_resumes_after_a_crash_at_any_step(crash_at: int) -> None:
    """The driver persists the state, then crashes before writing the ring; after a restart it
    reads the state back and carries on: same new key, created once, same end."""
    world = World.with_ring("jwt-old", "jwt-older", active="jwt-old")
    state = begin(world)
    new = state.new_kid
    stored = state.to_json()
    step = 0
    for _ in range(200):
        decision = world.plan(RotationState.from_json(stored))
        stored = decision.state.to_json()
        if step == crash_at:
            step += 1
            continue  # crashed after persisting, before writing: nothing applied, no sleep
        step += 1
        world.apply(decision)
        world.load()
        if decision.check_after is None:
            break
        world.now += decision.check_after
    final = RotationState.from_json(stored)
    assert final.phase == "idle" and final.last is not None and final.last.active == new
    assert world.ring == RingView(active=new, kids=(new,))  # type: ignore[arg-type]
    assert world.created == [new]


def test_planning_again_from_a_stored_state_repeats_no_write() -> None:
    world = World.with_ring("jwt-old")
    state = begin(world)
    for _ in range(3):  # write, promote: apply each write but keep the previous state
        decision = world.step(state)
        world.load()
        state = decision.state
    assert state.phase == "promoting"
    # A second "driver" restarted from the same stored state sees the ring already written.
    again = world.plan(RotationState.from_json(state.to_json()))
    assert again.write is None
    final, _ = drive(world, again.state)
    assert final.phase == "idle" and world.created == [state.new_kid]


def test_state_json_is_camel_case_and_holds_no_secret() -> None:
    world = World.with_ring("jwt-old")
    state = begin(world)
    decision = world.step(state)
    data = msgspec.json.decode(decision.state.to_json())
    assert {"ring", "phase", "newKid", "retiring", "seenKids", "policy"} <= set(data)
    assert data["policy"]["credentialLifetime"] == 65
    text = decision.state.to_json().decode()
    for entry in world.doc.keys:
        assert entry.secret not in text


def test_the_policy_recorded_at_the_start_is_used_to_the_end() -> None:
    world = World.with_ring("jwt-old")
    state = start_rotation(new_state("jwt"), world.ring, T0, "c0ffee", JWT)
    state, decisions = drive(world, state)
    retire = next(d for d in decisions if d.step == "retire")
    assert retire.state.phase_since is not None
    assert retire.state.phase_since - T0 >= JWT.credential_lifetime + JWT.margin


# --- key ids -----------------------------------------------------------------------------------


def test_kids_carry_the_ring_and_time_and_fit_the_keyring_format() -> None:
    kid = make_kid("internal", T0, "0a1b2c")
    assert kid == "api-20270115T080000Z-0a1b2c"
    assert len(make_kid("jwt", T0, "z" * 16)) <= 64
    with pytest.raises(RotationError, match="nonce"):
        make_kid("jwt", T0, "NO!")


def test_a_kid_seen_before_is_never_used_again() -> None:
    world = World.with_ring("jwt-old")
    state = begin(world, nonce="aaaa11")
    state, _ = drive(world, state)
    used = state.last.active if state.last else ""
    # Same second, same nonce: refused, even though the key is the active one...
    with pytest.raises(KeyIdReused):
        start_rotation(state, world.ring, T0, "aaaa11", JWT)
    # ...and after it left the ring (the state remembers every kid it has seen).
    state, _ = drive(world, start_rotation(state, world.ring, world.now, "bbbb22", JWT))
    assert used not in world.ring.kids and used in state.seen_kids
    with pytest.raises(KeyIdReused):
        start_rotation(state, world.ring, T0, "aaaa11", JWT)


def test_many_rotations_never_reuse_a_kid() -> None:
    world = World.with_ring("jwt-old")
    state = new_state("jwt")
    for i in range(6):
        state = start_rotation(state, world.ring, world.now, f"{i:06x}", JWT)
        state, _ = drive(world, state)
    assert len(world.created) == len(set(world.created)) == 6
    assert state.rotations == 6 and "jwt-old" in state.seen_kids
    assert world.ring.kids == (world.created[-1],)


def test_kids_from_before_the_state_existed_are_remembered() -> None:
    world = World.with_ring("jwt-20270115T080000Z-abcd12")
    state = plan_next(new_state("jwt"), world.ring, T0, {}).state
    assert state.seen_kids == ("jwt-20270115T080000Z-abcd12",)
    with pytest.raises(KeyIdReused):
        start_rotation(state, world.ring, T0, "abcd12", JWT)


# --- guards ---------------------------------------------------------------------------------


def test_only_one_rotation_at_a_time() -> None:
    world = World.with_ring("jwt-old")
    state = begin(world)
    with pytest.raises(RotationInProgress):
        start_rotation(state, world.ring, world.now, "ffff00", JWT)


def test_idle_state_has_nothing_to_do() -> None:
    world = World.with_ring("jwt-old")
    decision = world.plan(new_state("jwt"))
    assert decision.step == "idle" and decision.write is None and decision.check_after is None


def test_a_new_key_that_disappears_fails_the_rotation_instead_of_recreating_it() -> None:
    world = World.with_ring("jwt-old")
    state = begin(world)
    for _ in range(2):
        decision = world.step(state)
        world.load()
        state = decision.state
    assert state.phase == "promoting"
    world.doc = KeyringDocument(active="jwt-old", keys=[generate_key("jwt-old")])  # replaced
    decision = world.plan(state)
    assert decision.step == "failed" and decision.write is None
    assert decision.state.phase == "failed" and "disappeared" in (decision.state.error or "")
    # An operator may start over; the lost kid is never used again.
    assert state.new_kid in decision.state.seen_kids
    state, _ = drive(world, start_rotation(decision.state, world.ring, world.now, "9a9a9a", JWT))
    assert state.phase == "idle" and state.error is None


def test_an_inconsistent_ring_is_refused() -> None:
    with pytest.raises(RotationError, match="not in it"):
        start_rotation(new_state("jwt"), RingView("a", ("b",)), T0, "abcd", JWT)


def test_apply_layout_refuses_to_recreate_or_lose_keys() -> None:
    doc = KeyringDocument(active="a", keys=[generate_key("a"), generate_key("b")])
    with pytest.raises(RingConflict, match="no longer"):
        apply_layout(doc, RingLayout(active="a", keep=("a", "c")), generate_key)
    with pytest.raises(RingConflict, match="already"):
        apply_layout(doc, RingLayout(active="a", keep=("a",), add=("b",)), generate_key)
    with pytest.raises(RingConflict, match="active"):
        apply_layout(doc, RingLayout(active="b", keep=("a",)), generate_key)
    out = apply_layout(doc, RingLayout(active="c", keep=("b",), add=("c",)), generate_key)
    assert out.active == "c" and [e.kid for e in out.keys] == ["b", "c"]
    assert out.keys[0] == doc.keys[1]  # kept keys keep their secrets


# --- emergency ------------------------------------------------------------------------------


def test_emergency_replaces_a_compromised_active_key_in_one_write() -> None:
    world = World.with_ring("jwt-bad")
    state = start_emergency(new_state("jwt"), world.ring, T0, ["jwt-bad"], "e1e1e1", JWT)
    fresh = state.new_kid
    assert fresh is not None and state.create_new and state.phase == "emergency"
    state, decisions = drive(world, state)
    assert steps(decisions) == ["write", "done"]
    assert world.writes == [RingLayout(active=fresh, keep=(), add=(fresh,))]
    assert world.ring == RingView(active=fresh, kids=(fresh,))
    assert state.last is not None and state.last.emergency and state.last.removed == ("jwt-bad",)
    # No waiting for token lifetimes: done as soon as every service has loaded the new ring.
    assert world.now - T0 < 5


def test_emergency_waits_for_propagation_before_reporting_done() -> None:
    world = World.with_ring("api-bad")
    state = start_emergency(new_state("internal"), world.ring, T0, ["api-bad"], "e2e2e2", API)
    decision = world.step(state)
    world.load("auth")
    decision = world.plan(decision.state)
    assert decision.step == "wait" and decision.lagging == ("product",)
    world.load("product")
    assert world.plan(decision.state).step == "done"


def test_emergency_on_a_verify_only_key_keeps_the_active_key() -> None:
    world = World.with_ring("jwt-a", "jwt-b", active="jwt-b")
    state = start_emergency(new_state("jwt"), world.ring, T0, ["jwt-a"], "e3e3e3", JWT)
    assert state.new_kid == "jwt-b" and not state.create_new
    state, _ = drive(world, state)
    assert world.ring == RingView(active="jwt-b", kids=("jwt-b",)) and world.created == []


def test_emergency_during_a_rotation_promotes_the_key_it_already_added() -> None:
    world = World.with_ring("jwt-old")
    decision = world.step(begin(world))
    world.load()
    state = decision.state
    added = state.new_kid
    assert added in world.ring.kids and world.ring.active == "jwt-old"
    state = start_emergency(state, world.ring, world.now, ["jwt-old"], "e4e4e4", JWT)
    assert state.new_kid == added and not state.create_new
    state, _ = drive(world, state)
    assert world.ring == RingView(active=added, kids=(added,))  # type: ignore[arg-type]
    assert world.created == [added] and state.phase == "idle"


def test_emergency_when_every_key_is_compromised_creates_a_fresh_one() -> None:
    world = World.with_ring("jwt-old")
    state = begin(world)
    decision = world.step(state)
    world.load()
    added = decision.state.new_kid
    assert added is not None
    state = start_emergency(
        decision.state, world.ring, world.now, ["jwt-old", added], "e5e5e5", JWT
    )
    assert state.create_new and state.new_kid not in ("jwt-old", added)
    state, _ = drive(world, state)
    assert state.last is not None and world.ring.kids == (state.last.active,)


def test_emergency_refuses_unknown_kids() -> None:
    world = World.with_ring("jwt-a")
    with pytest.raises(RotationError, match="not in"):
        start_emergency(new_state("jwt"), world.ring, T0, ["jwt-zzz"], "e6e6e6", JWT)
    with pytest.raises(RotationError, match="at least one"):
        start_emergency(new_state("jwt"), world.ring, T0, [], "e6e6e6", JWT)


# --- reports ----------------------------------------------------------------------------------


def test_the_key_report_services_serve_is_what_drivers_read() -> None:
    report = KeyReport(
        service="cart",
        jwt=RingSeen(active="j2", kids=("j1", "j2"), loaded_at=T0),
        internal=RingSeen(active=None),
    )
    body = msgspec.json.encode(report)
    assert msgspec.json.decode(body)["jwt"] == {
        "active": "j2",
        "kids": ["j1", "j2"],
        "loadedAt": T0,
    }
    assert decode_key_report(body) == report
    assert decode_key_report(body).ring("internal") == RingSeen(active=None, kids=())


def test_a_key_id_says_when_it_was_made() -> None:
    assert kid_time("jwt-20261125T201500Z-3fa9c1") == calendar.timegm((2026, 11, 25, 20, 15, 0))
    assert kid_time("api-20261125T201500Z-3fa9c1") == calendar.timegm((2026, 11, 25, 20, 15, 0))
    assert kid_time(make_kid("jwt", T0, "abcd")) == T0
    assert kid_time("k1") is None
