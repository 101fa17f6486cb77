"""Rotate a keyring in local mode: the rotation state machine applied to keyring files.

``python -m services.local.rotation --keys-dir .local/keys --ring jwt --service-url URL ...``
runs one full rotation (or, with ``--emergency KID``, removes a compromised key at once) and
prints each step. The ring is rewritten atomically (temporary file, then rename), so a service
never reads half a file; propagation is confirmed from each service's ``GET /internal/v1/keys``.
The rotation's state is kept in ``<keys-dir>/rotation-<ring>.state.json``: run the command again
after an interruption and it resumes where it stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from services.keys.driver import (
    Prober,
    RingDriver,
    Step,
    StoreConflict,
    StoredRing,
    presented_keys,
)
from services.keys.files import write_atomically
from services.keys.keyring import (
    KeyringDocument,
    KeyringError,
    read_keyring_document,
    write_keyring_document,
)
from services.keys.report import RingName
from services.keys.rotation import (
    RingView,
    RotationError,
    RotationPolicy,
    RotationState,
    new_state,
)

RING_FILES: dict[RingName, str] = {"jwt": "jwt.json", "internal": "internal.json"}


class RotationFailed(RuntimeError):
    """The rotation stopped without finishing; the message says why."""


def state_path(keys_dir: Path, ring: RingName) -> Path:
    return keys_dir / f"rotation-{ring}.state.json"


def load_state(path: Path, ring: RingName) -> tuple[RotationState, bytes | None]:
    """The ring's rotation state, and the file's bytes (None: no state stored yet)."""
    if not path.exists():
        return new_state(ring), None
    data = path.read_bytes()
    state = RotationState.from_json(data)
    if state.ring != ring:
        raise RotationFailed(f"{path} holds the state of the {state.ring} ring, not {ring}")
    return state, data


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """One rotation per ring at a time (a second one would fight the first over the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RotationFailed(f"another rotation holds {path}") from exc
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _identity(path: Path) -> str:
    """Which version of the file this is: every write renames a new file (a new inode) in."""
    stat = path.stat()
    return f"{stat.st_ino}:{stat.st_mtime_ns}:{stat.st_size}"


@dataclass(frozen=True)
class FileRingStore:
    """A ring in a keyring file (what the services read) and its rotation state in another.

    Both are replaced by renaming a new file in, so a reader never sees half of one. The state
    goes first: should the process die between the two renames, the next look finds the ring
    as it was and applies the same layout again (or, if that write added the new key, fails the
    rotation rather than make that key id a second time). Held by one rotation at a time
    (`exclusive`); a ring file changed by someone else since it was read is a `StoreConflict`.
    """

    ring: RingName
    ring_file: Path
    state_file: Path

    async def read(self) -> StoredRing:
        version = _identity(self.ring_file) if self.ring_file.exists() else ""
        document = read_keyring_document(self.ring_file)
        state, stored = load_state(self.state_file, self.ring)
        return StoredRing(
            ring=self.ring, document=document, state=state, stored=stored, version=version
        )

    async def write(
        self, current: StoredRing, state: RotationState, document: KeyringDocument | None
    ) -> StoredRing:
        if _identity(self.ring_file) != current.version:
            raise StoreConflict(f"{self.ring_file} changed since it was read")
        data = state.to_json()
        write_atomically(self.state_file, data)
        if document is not None:
            write_keyring_document(self.ring_file, document)
        return StoredRing(
            ring=self.ring,
            document=document or current.document,
            state=state,
            stored=data,
            version=_identity(self.ring_file),
        )


def internal_keys(internal_ring_file: Path) -> list[str]:
    """The keys to present to the services (none while the file cannot be read)."""
    try:
        return presented_keys(read_keyring_document(internal_ring_file))
    except KeyringError:
        return []


def _stamp(now: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 10) % 10}"


@dataclass
class FileRotation:
    """One ring's rotation over keyring files; ``await run()`` drives it to the end."""

    ring: RingName
    ring_file: Path
    internal_ring_file: Path
    service_urls: Sequence[str]
    policy: RotationPolicy
    state_file: Path
    say: Callable[[str], None] = print
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    probe_timeout: float = 2.0
    #: (time, step, message) for each step taken: a write, a phase change, the end
    events: list[tuple[float, str, str]] = field(default_factory=list)

    def view(self) -> RingView:
        return RingView.of(read_keyring_document(self.ring_file))

    def _log(self, message: str) -> None:
        self.say(f"[{_stamp(self.clock())}] {message}")

    async def run(
        self, *, emergency: Sequence[str] = (), give_up_after: float | None = None
    ) -> RotationState:
        with exclusive(self.state_file.with_name(self.state_file.name + ".lock")):
            async with Prober.open(self.probe_timeout) as prober:
                return await self._run(prober, emergency, give_up_after)

    async def _run(
        self, prober: Prober, emergency: Sequence[str], give_up_after: float | None
    ) -> RotationState:
        started = self.clock()
        store = FileRingStore(self.ring, self.ring_file, self.state_file)
        targets = {url: url for url in self.service_urls}
        driver = RingDriver(
            store,
            probe=lambda: prober.ask(targets, internal_keys(self.internal_ring_file)),
            clock=self.clock,
        )
        current = await store.read()
        before = current.view
        self._log(f"{self.ring}: ring holds {', '.join(before.kids)} (active {before.active})")
        if current.state.in_progress and not emergency:
            self._log(
                f"{self.ring}: resuming the rotation to {current.state.new_kid} "
                f"({current.state.phase})"
            )
        else:
            current = driver.start(current, self.policy, emergency)
            what = "emergency removal of " + ", ".join(emergency) if emergency else "rotation"
            self._log(f"{self.ring}: {what} started; new active key {current.state.new_kid}")
        last_wait = ""
        while True:
            step = await driver.step(current)
            self._record(step, last_wait)
            decision, state = step.decision, step.state
            last_wait = decision.waiting_for
            if state.phase == "failed":
                raise RotationFailed(state.error or "the rotation failed")
            if decision.check_after is None:
                return state
            if give_up_after is not None and self.clock() - started > give_up_after:
                raise RotationFailed(
                    f"{self.ring} rotation not finished after {give_up_after:.0f}s "
                    f"(phase {state.phase}; run again to resume)"
                )
            await self.sleep(decision.check_after)
            current = await store.read()

    def _record(self, step: Step, last_wait: str) -> None:
        decision = step.decision
        if decision.event:
            self.events.append((self.clock(), decision.step, decision.event))
            self._log(decision.event)
        written = step.write_message()
        if written is not None:
            self.events.append((self.clock(), "write", written))
            self._log(written)
        if decision.waiting_for and decision.waiting_for != last_wait:
            late = " - overdue" if decision.overdue else ""
            self._log(f"{self.ring}: waiting for {decision.waiting_for}{late}")


def ring_file(keys_dir: Path, ring: RingName) -> Path:
    return keys_dir / RING_FILES[ring]


def build_policy(args: argparse.Namespace) -> RotationPolicy:
    if args.ring == "jwt":
        return RotationPolicy.for_jwt(
            args.token_ttl,
            leeway_seconds=args.leeway,
            margin=args.margin,
            propagation_delay=args.propagation_delay,
            poll_interval=args.poll_interval,
        )
    return RotationPolicy.for_internal(
        margin=args.margin,
        propagation_delay=args.propagation_delay,
        poll_interval=args.poll_interval,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.local.rotation",
        description="Rotate the JWT or internal API-key ring of the local platform.",
    )
    parser.add_argument("--keys-dir", type=Path, required=True, help="folder of jwt.json etc.")
    parser.add_argument("--ring", choices=["jwt", "internal"], required=True)
    parser.add_argument(
        "--service-url",
        action="append",
        default=[],
        help="a service's base URL (repeat for each); its /internal/v1/keys confirms each step",
    )
    parser.add_argument(
        "--emergency",
        action="append",
        default=[],
        metavar="KID",
        help="remove this compromised key now (repeatable); tokens it signed fail at once",
    )
    parser.add_argument(
        "--token-ttl", type=float, default=900, help="auth's ACCESS_TOKEN_TTL_SECONDS (900)"
    )
    parser.add_argument("--leeway", type=float, default=5, help="verifiers' clock leeway (5)")
    parser.add_argument("--margin", type=float, default=10, help="extra wait before removal (10)")
    parser.add_argument(
        "--propagation-delay",
        type=float,
        default=10,
        help="seconds after which an unreachable service is assumed to have loaded a change (10)",
    )
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--state-file", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=None, help="give up after N seconds")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ring: RingName = args.ring
    keys_dir: Path = args.keys_dir
    rotation = FileRotation(
        ring=ring,
        ring_file=ring_file(keys_dir, ring),
        internal_ring_file=ring_file(keys_dir, "internal"),
        service_urls=args.service_url,
        policy=build_policy(args),
        state_file=args.state_file or state_path(keys_dir, ring),
        say=lambda line: print(line, flush=True),
    )
    if not args.service_url:
        print("no --service-url: every step waits the propagation delay", flush=True)
    try:
        state = asyncio.run(rotation.run(emergency=args.emergency, give_up_after=args.timeout))
    except (RotationError, RotationFailed, KeyringError, OSError) as exc:
        print(f"rotation: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    after = rotation.view()
    assert state.last is not None
    print(f"{ring}: ring now holds {', '.join(after.kids)} (active {after.active})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
