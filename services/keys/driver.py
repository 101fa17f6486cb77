"""The one rotation driver: the state machine of `services.keys.rotation` applied to a ring kept in
a store, confirmed by the services' key reports. The operator (a keyring Secret), local mode (a
keyring file) and the bench (local mode's files) all drive their rotations through it.

- `RingStore` is where one ring lives: ``read`` gives its document and its rotation state;
  ``write`` stores a new state and, when it changes, the new ring, as one change refused with
  `StoreConflict` when the ring moved on since it was read (a Secret patched under its
  resourceVersion; files renamed in place, state first, under the rotation's lock).
- `Prober` asks each target (a service pod, a local process) for ``GET /internal/v1/keys`` with a
  key of the internal ring; a target that cannot be asked reports ``None``.
- `RingDriver.start` begins a rotation or an emergency with a key id never used before, in memory:
  the step that follows stores it together with the ring it asks for.
- `RingDriver.step` is one look: probe (while a rotation is in progress), `plan_next`, apply the
  layout, store state and ring together, and hand back what happened (`Step`). A write that adds
  the new key records it as added in the same state, so a new key removed by someone else before
  the next look fails the rotation instead of being made again under the same id.

Imports msgspec, httpx and the standard library only: the operator's image ships it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx
import msgspec

from services.keys.keyring import KeyEntry, KeyringDocument, generate_key
from services.keys.report import (
    INTERNAL_KEY_HEADER,
    KEYS_PATH,
    KeyReport,
    RingName,
    RingSeen,
    decode_key_report,
)
from services.keys.rotation import (
    Decision,
    KeyIdReused,
    RingLayout,
    RingView,
    RotationError,
    RotationPolicy,
    RotationState,
    apply_layout,
    plan_next,
    start_emergency,
    start_rotation,
)

CONFLICT_RETRIES = 3


class StoreConflict(RotationError):
    """The ring changed in its store since it was read: read it again and retry."""


@dataclass(frozen=True)
class StoredRing:
    """One ring as its store holds it, with the rotation state a step works from."""

    ring: RingName
    document: KeyringDocument
    state: RotationState
    """As stored, or as `RingDriver.start` changed it in memory (stored by the next step)."""
    stored: bytes | None = None
    """The state as the store holds it; None: never stored."""
    version: str = ""
    """What the store checks a write against: a resourceVersion, a file's identity."""
    created: float | None = None
    """When the store first held the ring, when it knows."""

    @property
    def view(self) -> RingView:
        return RingView.of(self.document)


class RingStore(Protocol):
    """Where one ring and its rotation state live."""

    async def read(self) -> StoredRing: ...

    async def write(
        self, current: StoredRing, state: RotationState, document: KeyringDocument | None
    ) -> StoredRing:
        """Store ``state`` and, unless None, ``document`` as one change, or raise
        `StoreConflict` if the ring is no longer as ``current`` was read; the ring as stored."""
        ...


Reports = Mapping[str, KeyReport | None]


def presented_keys(internal: KeyringDocument) -> list[str]:
    """The internal ring's secrets to present, its active key first: while that ring itself is
    rotated, a service that has not loaded the new active key still accepts an older one."""
    return [entry.secret for entry in sorted(internal.keys, key=lambda e: e.kid != internal.active)]


def ring_reports(reports: Reports, ring: RingName) -> dict[str, RingSeen | None]:
    return {name: None if report is None else report.ring(ring) for name, report in reports.items()}


@dataclass
class Prober:
    """Asks services which keys they have loaded (``GET /internal/v1/keys``)."""

    client: httpx.AsyncClient

    @classmethod
    def open(cls, timeout: float) -> Prober:
        return cls(httpx.AsyncClient(timeout=timeout, trust_env=False))

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> Prober:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def one(self, url: str, keys: Sequence[str], name: str = "") -> KeyReport | None:
        """The report of the service at ``url``; None if it cannot be reached.

        A service that answers but refuses every key in ``keys`` has loaded neither the internal
        ring nor the one before it: it is reported as holding no keys, so a rotation waits for
        it instead of assuming it will catch up.
        """
        for key in keys:
            try:
                response = await self.client.get(
                    url.rstrip("/") + KEYS_PATH, headers={INTERNAL_KEY_HEADER: key}
                )
            except httpx.HTTPError:
                return None
            if response.status_code == 401:
                continue
            if response.status_code != 200:
                return None
            try:
                return decode_key_report(response.content)
            except msgspec.DecodeError:
                return None
        if not keys:
            return None
        nothing = RingSeen(active=None)
        return KeyReport(service=name or url, jwt=nothing, internal=nothing)

    async def ask(self, targets: Mapping[str, str | None], keys: Sequence[str]) -> Reports:
        """Every target's report, by name; a target without a URL (not running) reports None."""

        async def one(name: str, url: str | None) -> KeyReport | None:
            return None if url is None else await self.one(url, keys, name)

        found = await asyncio.gather(*(one(name, url) for name, url in targets.items()))
        return dict(zip(targets, found, strict=True))


async def no_targets() -> Reports:
    return {}


@dataclass(frozen=True)
class Step:
    """What one `RingDriver.step` did."""

    decision: Decision
    ring: StoredRing
    """The ring and its state as stored after the step."""
    written: RingLayout | None = None
    """The layout written to the ring by this step, if it wrote one."""

    @property
    def state(self) -> RotationState:
        return self.decision.state

    def write_message(self) -> str | None:
        """A sentence for the ring this step wrote, for a log line or an event."""
        layout = self.written
        if layout is None:
            return None
        added = f"; added {', '.join(layout.add)}" if layout.add else ""
        return (
            f"{self.ring.ring}: ring now {', '.join(layout.kids)} (active {layout.active}{added})"
        )


@dataclass
class RingDriver:
    """Drives the rotation of the ring in ``store``; ``probe`` gives the targets' reports."""

    store: RingStore
    probe: Callable[[], Awaitable[Reports]] = no_targets
    clock: Callable[[], float] = time.time
    make_key: Callable[[str], KeyEntry] = generate_key

    def start(
        self, current: StoredRing, policy: RotationPolicy, compromised: Sequence[str] = ()
    ) -> StoredRing:
        """``current`` with a rotation begun (or, with ``compromised`` key ids, an emergency),
        under a key id never used before. In memory: the next `step` stores it."""
        now, view = self.clock(), current.view
        for _ in range(5):
            nonce = secrets.token_hex(3)
            try:
                if compromised:
                    state = start_emergency(current.state, view, now, compromised, nonce, policy)
                else:
                    state = start_rotation(current.state, view, now, nonce, policy)
            except KeyIdReused:
                continue
            return dataclasses.replace(current, state=state)
        raise RotationError("could not find an unused key id")

    async def step(self, current: StoredRing, reports: Reports | None = None) -> Step:
        """Take the next step of ``current``'s rotation, with ``reports`` (else probed when a
        rotation is in progress), and store it.

        Should the ring have moved on meanwhile, it is read again and the step planned anew
        from this driver's state, unless the stored state moved on too (another driver's work):
        then `StoreConflict` is raised for the caller to start its look over.
        """
        if reports is None:
            reports = await self.probe() if current.state.in_progress else {}
        for attempt in range(CONFLICT_RETRIES):
            try:
                return await self._step(current, ring_reports(reports, current.ring))
            except StoreConflict:
                fresh = await self.store.read()
                if attempt == CONFLICT_RETRIES - 1 or fresh.stored != current.stored:
                    raise
                current = dataclasses.replace(fresh, state=current.state)
        raise AssertionError("unreachable")

    async def _step(self, current: StoredRing, reports: Mapping[str, RingSeen | None]) -> Step:
        now = self.clock()
        decision = plan_next(current.state, current.view, now, reports)
        state = decision.state
        document = None
        if decision.write is not None:
            document = apply_layout(current.document, decision.write, self.make_key)
            if state.new_kid in decision.write.add and state.added_at is None:
                # State and ring are stored together, so the state says at once that the new
                # key is in the ring: should it vanish before the next look, the rotation fails
                # instead of making a second key under the same id.
                state = msgspec.structs.replace(state, added_at=now)
                decision = msgspec.structs.replace(decision, state=state)
        # An idle ring that never rotated has nothing worth keeping: its store is not touched.
        changed = state.to_json() != current.stored
        if document is None and not (changed and (current.stored or state.phase != "idle")):
            return Step(decision, dataclasses.replace(current, state=state))
        stored = await self.store.write(current, state, document)
        return Step(decision, stored, decision.write if document is not None else None)
