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
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec

from services.keys.keyring import (
    KeyringError,
    generate_key,
    read_keyring_document,
    write_keyring_document,
)
from services.keys.report import (
    INTERNAL_KEY_HEADER,
    KEYS_PATH,
    RingName,
    RingSeen,
    decode_key_report,
)
from services.keys.rotation import (
    Decision,
    KeyIdReused,
    RingView,
    RotationError,
    RotationPolicy,
    RotationState,
    apply_layout,
    new_state,
    plan_next,
    start_emergency,
    start_rotation,
)

RING_FILES: dict[RingName, str] = {"jwt": "jwt.json", "internal": "internal.json"}


class RotationFailed(RuntimeError):
    """The rotation stopped without finishing; the message says why."""


def state_path(keys_dir: Path, ring: RingName) -> Path:
    return keys_dir / f"rotation-{ring}.state.json"


def load_state(path: Path, ring: RingName) -> RotationState:
    if not path.exists():
        return new_state(ring)
    state = RotationState.from_json(path.read_bytes())
    if state.ring != ring:
        raise RotationFailed(f"{path} holds the state of the {state.ring} ring, not {ring}")
    return state


def save_state(path: Path, state: RotationState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(state.to_json())
    tmp.replace(path)


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


@dataclass
class ReportPoller:
    """Asks each service which keys it has loaded, presenting a key from the internal ring.

    The ring's active key is tried first, then the others: while the internal ring itself is
    rotated, a service that has not yet loaded the new active key still accepts an older one.
    """

    service_urls: Sequence[str]
    internal_ring_file: Path
    timeout: float = 2.0
    _client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> ReportPoller:
        self._client = httpx.AsyncClient(timeout=self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _keys(self) -> list[str]:
        try:
            doc = read_keyring_document(self.internal_ring_file)
        except KeyringError:
            return []
        ordered = sorted(doc.keys, key=lambda entry: entry.kid != doc.active)
        return [entry.secret for entry in ordered]

    async def one(self, url: str, ring: RingName) -> RingSeen | None:
        """The service's report for ``ring``; ``None`` if it cannot be reached.

        A service that refuses every key in the internal ring file is answering but has not
        loaded that ring (nor the one before it): it is reported as holding no keys, so the
        rotation waits for it instead of assuming it will catch up.
        """
        assert self._client is not None
        keys = self._keys()
        for key in keys:
            try:
                response = await self._client.get(
                    url.rstrip("/") + KEYS_PATH, headers={INTERNAL_KEY_HEADER: key}
                )
            except httpx.TransportError:
                return None
            if response.status_code == 401:
                continue
            if response.status_code != 200:
                return None
            try:
                return decode_key_report(response.content).ring(ring)
            except msgspec.DecodeError:
                return None
        return RingSeen(active=None) if keys else None

    async def all(self, ring: RingName) -> dict[str, RingSeen | None]:
        seen = await asyncio.gather(*(self.one(url, ring) for url in self.service_urls))
        return dict(zip(self.service_urls, seen, strict=True))


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
    #: (time, step, message) for each step taken: a write, a phase change, the end
    events: list[tuple[float, str, str]] = field(default_factory=list)

    def view(self) -> RingView:
        return RingView.of(read_keyring_document(self.ring_file))

    def _log(self, message: str) -> None:
        self.say(f"[{_stamp(self.clock())}] {message}")

    def _begin(self, state: RotationState, emergency: Sequence[str]) -> RotationState:
        ring = self.view()
        for _ in range(5):
            nonce = secrets.token_hex(3)
            try:
                if emergency:
                    return start_emergency(state, ring, self.clock(), emergency, nonce, self.policy)
                return start_rotation(state, ring, self.clock(), nonce, self.policy)
            except KeyIdReused:
                continue
        raise RotationFailed("could not find an unused key id")

    def _write(self, decision: Decision) -> None:
        assert decision.write is not None
        document = read_keyring_document(self.ring_file)
        write_keyring_document(self.ring_file, apply_layout(document, decision.write, generate_key))

    async def run(
        self, *, emergency: Sequence[str] = (), give_up_after: float | None = None
    ) -> RotationState:
        with exclusive(self.state_file.with_name(self.state_file.name + ".lock")):
            return await self._run(emergency, give_up_after)

    async def _run(self, emergency: Sequence[str], give_up_after: float | None) -> RotationState:
        started = self.clock()
        state = load_state(self.state_file, self.ring)
        before = self.view()
        self._log(f"{self.ring}: ring holds {', '.join(before.kids)} (active {before.active})")
        if state.in_progress and not emergency:
            self._log(f"{self.ring}: resuming the rotation to {state.new_kid} ({state.phase})")
        else:
            state = self._begin(state, emergency)
            what = "emergency removal of " + ", ".join(emergency) if emergency else "rotation"
            self._log(f"{self.ring}: {what} started; new active key {state.new_kid}")
        save_state(self.state_file, state)
        last_wait = ""
        async with ReportPoller(self.service_urls, self.internal_ring_file) as poller:
            while True:
                reports = await poller.all(self.ring)
                decision = plan_next(state, self.view(), self.clock(), reports)
                state = decision.state
                save_state(self.state_file, state)  # first the state, then the ring
                if decision.event:
                    self.events.append((self.clock(), decision.step, decision.event))
                    self._log(decision.event)
                if decision.write is not None:
                    self._write(decision)
                    layout = decision.write
                    if state.new_kid in layout.add and state.added_at is None:
                        # The ring file now holds the new key: say so at once, so that a key
                        # removed by hand before the next look fails the rotation instead of
                        # being made again under the same id with another secret.
                        state = msgspec.structs.replace(state, added_at=self.clock())
                        save_state(self.state_file, state)
                    added = f", added {', '.join(layout.add)}" if layout.add else ""
                    message = (
                        f"{self.ring}: wrote ring: {', '.join(layout.kids)} "
                        f"(active {layout.active}{added})"
                    )
                    self.events.append((self.clock(), "write", message))
                    self._log(message)
                if decision.waiting_for and decision.waiting_for != last_wait:
                    late = " - overdue" if decision.overdue else ""
                    self._log(f"{self.ring}: waiting for {decision.waiting_for}{late}")
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
