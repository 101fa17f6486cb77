"""Proof under load: key rotations while the platform serves a steady mixed load.

``python -m bench.rotation_load`` starts the platform in local mode (a MongoDB-protocol server and
the services as processes, all on 127.0.0.1), runs shoppers that sign in, read and change their
carts, check out and delete throwaway accounts (auth's deletion cascade calls cart and order
with the internal API key), and meanwhile rotates the JWT ring and the internal API-key ring
(three times each by default) with the same file driver as ``python -m services.local.rotation``.

It prints every rotation step, then requests sent, failures by status code, the key ids before
and after, what the services logged about refused credentials, and the duration. It exits 0 only
with zero failed requests, the old keys gone, and every token issued before a rotation accepted
until it expired. Bounded: the load stops once the rotations are done, and everything stops
after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import jwt

from services.keys.keyring import KeyRing, read_keyring_document
from services.keys.report import RingName
from services.keys.rotation import RotationPolicy
from services.local.mongo_server import MongoServer
from services.local.platform import SERVICES, LocalPlatform
from services.local.rotation import FileRotation, ring_file, state_path

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "rotation load password"
LEEWAY = 5  # the services' JWT leeway (TokenService default)
# What the services log when they refuse a credential or a dependency refuses them.
REFUSAL_LOGS = (
    "internal call refused",
    "token refused",
    "cascade delivery refused",
    "unexpected dependency answer",
    "keyring not loaded",
)


@dataclass
class LoadConfig:
    users: int = 6
    jwt_rotations: int = 3
    internal_rotations: int = 3
    token_ttl: int = 60
    margin: float = 5.0
    propagation_delay: float = 5.0
    poll_interval: float = 0.25
    warmup: float = 5.0  # load before the first rotation
    internal_spacing: float = 20.0  # pause between API-key rotations
    jwt_spacing: float = 3.0  # pause between JWT rotations
    tail: float = 3.0  # load after the last rotation
    think_time: float = 0.02
    max_seconds: float = 900.0
    seed: int = 1
    workdir: Path | None = None
    mongo: MongoServer | None = None
    db_prefix: str = ""


@dataclass
class RotationRecord:
    ring: RingName
    new_kid: str
    removed: tuple[str, ...]
    started: float
    promoted: float
    retired: float
    finished: float
    confirmed_by: str
    #: successful requests by operation while this rotation ran
    during: Counter[str] = field(default_factory=Counter)


@dataclass
class TokenProbe:
    """A token signed just before a JWT rotation, used until it expires."""

    kid: str
    expires: float
    uses: int = 0
    ok: int = 0
    last_ok: float = 0.0
    refused_after_expiry: bool | None = None


@dataclass
class LoadReport:
    services: list[str]
    duration: float = 0.0
    sent: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    failure_samples: list[str] = field(default_factory=list)
    kids_before: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    kids_after: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    reported_after: dict[str, dict[str, Any]] = field(default_factory=dict)
    rotations: list[RotationRecord] = field(default_factory=list)
    probes: list[TokenProbe] = field(default_factory=list)
    old_kid_uses_after_promotion: Counter[str] = field(default_factory=Counter)
    service_logs: Counter[str] = field(default_factory=Counter)
    deleted_users: list[str] = field(default_factory=list)
    cascades_done: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def old_keys_gone(self) -> bool:
        for ring, (_, before) in self.kids_before.items():
            active, after = self.kids_after.get(ring, ("", before))
            if set(before) & set(after) or after != [active]:
                return False
            for seen in self.reported_after.values():
                if seen.get(ring, {}).get("kids") != after:
                    return False
        return True

    @property
    def probes_ok(self) -> bool:
        return all(
            p.uses > 0 and p.ok == p.uses and p.refused_after_expiry is not False
            for p in self.probes
        )

    @property
    def ok(self) -> bool:
        return (
            not self.failures
            and not self.service_logs
            and self.old_keys_gone
            and self.probes_ok
            and self.cascades_done == len(self.deleted_users)
        )

    def render(self) -> str:
        lines = ["", "=== rotation under load ==="]
        lines.append(f"services:           {', '.join(self.services)} (local mode, 127.0.0.1)")
        lines.append(f"duration:           {self.duration:.1f}s")
        lines.append(f"requests sent:      {self.sent}")
        failed = sum(self.failures.values())
        by_status = ", ".join(f"{k}: {v}" for k, v in sorted(self.failures.items())) or "none"
        lines.append(f"failed requests:    {failed} (by status: {by_status})")
        lines.extend(f"  e.g. {sample}" for sample in self.failure_samples[:5])
        lines.append("requests by operation and status:")
        lines.extend(f"  {op:<28} {n}" for op, n in sorted(self.by_operation.items()))
        lines.append("rotations:")
        for r in self.rotations:
            lines.append(
                f"  {r.ring:<8} -> {r.new_kid}  removed {', '.join(r.removed)}; "
                f"promoted +{r.promoted - r.started:.1f}s, old key removed "
                f"+{r.retired - r.started:.1f}s, done +{r.finished - r.started:.1f}s "
                f"(confirmed by {r.confirmed_by})"
            )
            ops = ", ".join(f"{op} {n}" for op, n in r.during.most_common())
            lines.append(f"           {sum(r.during.values())} requests meanwhile: {ops}")
        for ring in self.kids_before:
            b_active, b_kids = self.kids_before[ring]
            a_active, a_kids = self.kids_after.get(ring, ("?", []))
            lines.append(f"{ring} kids before:    {', '.join(b_kids)} (active {b_active})")
            lines.append(f"{ring} kids after:     {', '.join(a_kids)} (active {a_active})")
        for service, seen in sorted(self.reported_after.items()):
            lines.append(
                f"  {service:<8} reports jwt {seen.get('jwt', {}).get('kids')}, "
                f"internal {seen.get('internal', {}).get('kids')}"
            )
        lines.append(f"old keys gone:      {'yes' if self.old_keys_gone else 'NO'}")
        uses = sum(self.old_kid_uses_after_promotion.values())
        lines.append(
            f"requests with a token of the previous key after the new one became active: {uses}"
        )
        for probe in self.probes:
            after = {None: "not checked", True: "refused", False: "STILL ACCEPTED"}
            lines.append(
                f"  token of {probe.kid}: {probe.ok}/{probe.uses} accepted, last "
                f"{probe.expires - probe.last_ok:.1f}s before expiry; after expiry: "
                f"{after[probe.refused_after_expiry]}"
            )
        logged = ", ".join(f"{k}: {v}" for k, v in sorted(self.service_logs.items())) or "none"
        lines.append(f"refusals logged by the services during the load: {logged}")
        lines.append(
            f"deletion cascades:  {self.cascades_done}/{len(self.deleted_users)} users' carts "
            "emptied"
        )
        lines.extend(f"note: {note}" for note in self.notes)
        lines.append(f"result:             {'PASS' if self.ok else 'FAIL'}")
        return "\n".join(lines)


def available_services() -> list[str]:
    return [name for name in SERVICES if (REPO / "services" / name / "__main__.py").exists()]


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def expiry_of(token: str) -> float:
    return float(jwt.decode(token, options={"verify_signature": False})["exp"])


class Load:
    """The shoppers, the rotations and the bookkeeping of one run."""

    def __init__(self, platform: LocalPlatform, config: LoadConfig, report: LoadReport) -> None:
        self.p = platform
        self.config = config
        self.report = report
        self.rng = random.Random(config.seed)
        self.stop = asyncio.Event()
        self.products: list[str] = []
        self.started = time.time()
        self.token_requests: list[tuple[float, str]] = []
        self.successes: list[tuple[float, str]] = []
        self.has_order = "order" in report.services
        self.has_cart = "cart" in report.services
        self.http = httpx.AsyncClient(timeout=15, limits=httpx.Limits(max_connections=64))
        self._probe_tokens: list[tuple[TokenProbe, str]] = []

    def say(self, line: str) -> None:
        print(f"[{time.time() - self.started:7.1f}s] {line}", flush=True)

    def url(self, service: str, path: str) -> str:
        return self.p.urls[service] + path

    def internal_key(self) -> str:
        return KeyRing(self.p.internal_keyring).presentable_active()

    async def call(
        self,
        op: str,
        method: str,
        service: str,
        path: str,
        *,
        token: str | None = None,
        expect: tuple[int, ...] = (200,),
        **kwargs: Any,
    ) -> httpx.Response | None:
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.report.sent += 1
        try:
            response = await self.http.request(
                method, self.url(service, path), headers=headers, **kwargs
            )
        except httpx.HTTPError as exc:
            self.report.by_operation[f"{op} error"] += 1
            self.report.failures["transport"] += 1
            self.report.failure_samples.append(f"{op}: {type(exc).__name__}: {exc}")
            return None
        self.report.by_operation[f"{op} {response.status_code}"] += 1
        if response.status_code not in expect:
            self.report.failures[str(response.status_code)] += 1
            self.report.failure_samples.append(
                f"{op}: {response.status_code} {response.text[:160]}"
            )
            return None
        now = time.time()
        self.successes.append((now, op))
        if token:
            self.token_requests.append((now, kid_of(token)))
        return response

    # --- setup ------------------------------------------------------------------------------

    async def to_auth(
        self, op: str, path: str, credentials: dict[str, str], expect: tuple[int, ...] = (200,)
    ) -> dict[str, Any] | None:
        """POST ``credentials`` to auth; the answer's body, or None (counted as failed)."""
        response = await self.call(op, "POST", "auth", path, json=credentials, expect=expect)
        return None if response is None else dict(response.json())

    async def sign_in(self, email: str, password: str) -> tuple[str, str] | None:
        credentials = {"email": email, "password": password}
        body = await self.to_auth("sign in", "/api/v1/auth/token", credentials)
        return None if body is None else (body["accessToken"], body["user"]["id"])

    async def register(self, email: str) -> str | None:
        credentials = {"email": email, "password": PASSWORD}
        body = await self.to_auth("register", "/api/v1/auth/register", credentials, (201,))
        return None if body is None else str(body["id"])

    async def prepare_products(self) -> None:
        signed = await self.sign_in(self.p.admin_email, self.p.admin_password)
        if signed is None:
            raise RuntimeError("the admin could not sign in")
        token = signed[0]
        response = await self.call(
            "list products", "GET", "product", "/api/v1/products/", params={"pageSize": 8}
        )
        if response is None:
            raise RuntimeError("the catalogue could not be listed")
        self.products = [item["id"] for item in response.json()["items"]]
        for product_id in self.products:  # plenty of stock, so checkouts never run out
            await self.call(
                "admin restock",
                "PATCH",
                "product",
                f"/api/v1/products/{product_id}",
                token=token,
                json={"stock": 1_000_000},
            )

    # --- load -------------------------------------------------------------------------------

    async def shopper(self, index: int) -> None:
        email = f"shopper-{index}-{uuid.uuid4().hex[:8]}@load.test"
        if await self.register(email) is None:
            return
        token, expires = "", 0.0
        cart: dict[str, int] = {}
        n = 0
        while not self.stop.is_set():
            n += 1
            # Like a storefront: keep the token until it is about to expire, then sign in again.
            if expires - time.time() < 1.5:
                signed = await self.sign_in(email, PASSWORD)
                if signed is None:
                    await asyncio.sleep(0.5)
                    continue
                token, expires = signed[0], expiry_of(signed[0])
            roll = self.rng.random()
            if not self.has_cart or roll < 0.35:
                if self.has_cart:
                    await self.call("cart read", "GET", "cart", "/api/v1/cart/", token=token)
                else:
                    await self.call(
                        "verify token", "GET", "auth", "/api/v1/auth/verify", token=token
                    )
            elif roll < 0.60 or not cart:
                product = self.rng.choice(self.products)
                if cart.get(product, 0) >= 5:
                    continue
                if await self.call(
                    "cart add",
                    "POST",
                    "cart",
                    "/api/v1/cart/items",
                    token=token,
                    json={"productId": product, "quantity": 1},
                ):
                    cart[product] = cart.get(product, 0) + 1
            elif roll < 0.72:
                product = self.rng.choice(list(cart))
                quantity = self.rng.randint(1, 3)
                if await self.call(
                    "cart change quantity",
                    "PATCH",
                    "cart",
                    f"/api/v1/cart/items/{product}",
                    token=token,
                    json={"quantity": quantity},
                ):
                    cart[product] = quantity
            elif roll < 0.80:
                product = self.rng.choice(list(cart))
                if await self.call(
                    "cart remove",
                    "DELETE",
                    "cart",
                    f"/api/v1/cart/items/{product}",
                    token=token,
                    expect=(204,),
                ):
                    cart.pop(product, None)
            elif roll < 0.92 and self.has_order:
                if await self.call(
                    "checkout",
                    "POST",
                    "order",
                    "/api/v1/orders/",
                    token=token,
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                    expect=(201,),
                ):
                    cart.clear()
            elif self.has_order:
                await self.call("order list", "GET", "order", "/api/v1/orders/", token=token)
            else:
                await self.call("cart read", "GET", "cart", "/api/v1/cart/", token=token)
            await asyncio.sleep(self.config.think_time)

    async def throwaway_accounts(self) -> None:
        """Accounts made and deleted again: each deletion makes auth call cart and order."""
        while not self.stop.is_set():
            email = f"gone-{uuid.uuid4().hex[:10]}@load.test"
            user_id = await self.register(email)
            signed = await self.sign_in(email, PASSWORD) if user_id else None
            if signed is not None:
                token = signed[0]
                if self.has_cart:
                    await self.call(
                        "cart add",
                        "POST",
                        "cart",
                        "/api/v1/cart/items",
                        token=token,
                        json={"productId": self.rng.choice(self.products), "quantity": 1},
                    )
                if await self.call(
                    "delete user",
                    "DELETE",
                    "auth",
                    f"/api/v1/users/{signed[1]}",
                    token=token,
                    expect=(204,),
                ):
                    self.report.deleted_users.append(signed[1])
            await asyncio.sleep(1.0)

    async def probe(self, probe: TokenProbe, token: str) -> None:
        """Use a token signed before a rotation until just before it expires."""
        while time.time() < probe.expires - 1.0 and not self.stop.is_set():
            probe.uses += 1
            if self.has_cart:
                response = await self.call(
                    "probe cart read", "GET", "cart", "/api/v1/cart/", token=token
                )
            else:
                response = await self.call(
                    "probe verify", "GET", "auth", "/api/v1/auth/verify", token=token
                )
            if response is not None:
                probe.ok += 1
                probe.last_ok = time.time()
            await asyncio.sleep(1.0)

    # --- rotations --------------------------------------------------------------------------

    def policy(self, ring: RingName) -> RotationPolicy:
        c = self.config
        if ring == "jwt":
            return RotationPolicy.for_jwt(
                c.token_ttl,
                leeway_seconds=LEEWAY,
                margin=c.margin,
                propagation_delay=c.propagation_delay,
                poll_interval=c.poll_interval,
            )
        return RotationPolicy.for_internal(
            margin=c.margin, propagation_delay=c.propagation_delay, poll_interval=c.poll_interval
        )

    async def rotate(self, ring: RingName, count: int, spacing: float) -> None:
        probe_email = f"probe-{ring}-{uuid.uuid4().hex[:8]}@load.test"
        if ring == "jwt":
            await self.register(probe_email)
        probes: list[asyncio.Task[None]] = []
        for i in range(count):
            if ring == "jwt":
                signed = await self.sign_in(probe_email, PASSWORD)
                if signed is not None:
                    probe = TokenProbe(kid=kid_of(signed[0]), expires=expiry_of(signed[0]))
                    self.report.probes.append(probe)
                    probes.append(asyncio.create_task(self.probe(probe, signed[0])))
                    self._probe_tokens.append((probe, signed[0]))
            rotation = FileRotation(
                ring=ring,
                ring_file=ring_file(self.p.keys_dir, ring),
                internal_ring_file=self.p.internal_keyring,
                service_urls=[self.p.urls[name] for name in self.report.services],
                policy=self.policy(ring),
                state_file=state_path(self.p.keys_dir, ring),
                say=lambda line: self.say(line.split("] ", 1)[-1]),
            )
            started = time.time()
            state = await rotation.run(give_up_after=self.config.max_seconds)
            assert state.last is not None

            def at(step: str, events: list[tuple[float, str, str]] = rotation.events) -> float:
                return next((t for t, name, _ in events if name == step), float("nan"))

            self.report.rotations.append(
                RotationRecord(
                    ring=ring,
                    new_kid=state.last.active,
                    removed=state.last.removed,
                    started=started,
                    promoted=at("promote"),
                    retired=at("retire"),
                    finished=time.time(),
                    confirmed_by=state.last.confirmed_by,
                )
            )
            if i < count - 1:
                await asyncio.sleep(spacing)
        await asyncio.gather(*probes)

    # --- checks after the load ------------------------------------------------------------

    async def check_cascades(self) -> None:
        if not self.has_cart:
            self.report.cascades_done = len(self.report.deleted_users)
            return
        deadline = time.time() + 20
        pending = list(self.report.deleted_users)
        while pending and time.time() < deadline:
            still = []
            for user_id in pending:
                response = await self.http.get(
                    self.url("cart", f"/internal/v1/users/{user_id}/cart"),
                    headers={"X-Internal-Api-Key": self.internal_key()},
                )
                if response.status_code != 200 or response.json().get("lines"):
                    still.append(user_id)
            pending = still
            if pending:
                await asyncio.sleep(0.5)
        self.report.cascades_done = len(self.report.deleted_users) - len(pending)

    async def check_expired_probes(self) -> None:
        for probe, token in self._probe_tokens:
            wait = probe.expires + LEEWAY + 1 - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            response = await self.http.get(
                self.url("auth", "/api/v1/auth/verify"),
                headers={"Authorization": f"Bearer {token}"},
            )
            probe.refused_after_expiry = response.status_code == 401

    async def key_reports(self) -> None:
        for name in self.report.services:
            response = await self.http.get(
                self.url(name, "/internal/v1/keys"),
                headers={"X-Internal-Api-Key": self.internal_key()},
            )
            self.report.reported_after[name] = response.json()

    async def run(self) -> None:
        c = self.config
        await self.prepare_products()
        workers = [asyncio.create_task(self.shopper(i)) for i in range(c.users)]
        workers.append(asyncio.create_task(self.throwaway_accounts()))
        self.say(f"load running: {c.users} shoppers and a throwaway-account loop")
        try:
            await asyncio.sleep(c.warmup)
            await asyncio.wait_for(
                asyncio.gather(
                    self.rotate("jwt", c.jwt_rotations, c.jwt_spacing),
                    self.rotate("internal", c.internal_rotations, c.internal_spacing),
                ),
                c.max_seconds,
            )
            await asyncio.sleep(c.tail)
        finally:
            self.stop.set()
            await asyncio.gather(*workers, return_exceptions=True)
        self.say(f"load stopped after {self.report.sent} requests")
        for r in self.report.rotations:
            r.during.update(op for at, op in self.successes if r.started <= at <= r.finished)
        # Requests made with a token of the key a rotation retired, after the new key took over.
        for r in self.report.rotations:
            if r.ring != "jwt":
                continue
            for at, kid in self.token_requests:
                if kid in r.removed and r.promoted < at < r.retired:
                    self.report.old_kid_uses_after_promotion[kid] += 1


@contextmanager
def log_window(logs_dir: Path) -> Iterator[Counter[str]]:
    """Counts refusal messages the services log between entering and leaving."""
    found: Counter[str] = Counter()
    offsets = {path: path.stat().st_size for path in logs_dir.glob("*.log")}
    yield found
    for path in logs_dir.glob("*.log"):
        with open(path, "rb") as handle:
            handle.seek(offsets.get(path, 0))
            for raw in handle:
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("msg") in REFUSAL_LOGS:
                    reason = entry.get("reason") or entry.get("status") or ""
                    found[f"{path.stem}: {entry['msg']} ({reason})"] += 1


def ring_ids(path: Path) -> tuple[str, list[str]]:
    doc = read_keyring_document(path)
    return doc.active, [entry.kid for entry in doc.keys]


def run_load(config: LoadConfig) -> LoadReport:
    """Start the platform, run the load with the rotations, and return the figures."""
    services = available_services()
    report = LoadReport(services=services)
    missing = [name for name in SERVICES if name not in services]
    if missing:
        report.notes.append(f"not in this checkout, so not exercised: {', '.join(missing)}")
    fast_auth = {
        # Sign-in limits are per client address, and every shopper here is 127.0.0.1.
        "SIGNIN_LIMIT_PER_CLIENT": "1000000",
        "SIGNIN_LIMIT_PER_EMAIL": "1000000",
        # Password hashing is not what this measures; cheap hashing leaves the CPU to the load.
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "8192",
        "CASCADE_POLL_SECONDS": "0.5",
        "CASCADE_RETRY_MAX_SECONDS": "2",
    }
    with tempfile.TemporaryDirectory(prefix="rotation-load-") as scratch:
        workdir = config.workdir or Path(scratch)
        started = time.monotonic()
        print(f"starting {', '.join(services)} in {workdir} ...", flush=True)
        with LocalPlatform(
            workdir,
            token_ttl_seconds=config.token_ttl,
            mongo=config.mongo,
            ephemeral_mongo=config.mongo is None,
            db_prefix=config.db_prefix,
            service_env={"auth": fast_auth},
            services=services,
        ) as platform:
            for ring in ("jwt", "internal"):
                report.kids_before[ring] = ring_ids(ring_file(platform.keys_dir, ring))  # type: ignore[arg-type]
            print(f"platform ready in {time.monotonic() - started:.1f}s", flush=True)
            load_started = time.monotonic()
            asyncio.run(_run(platform, config, report))
            report.duration = time.monotonic() - load_started
            for ring in ("jwt", "internal"):
                report.kids_after[ring] = ring_ids(ring_file(platform.keys_dir, ring))  # type: ignore[arg-type]
    return report


async def _run(platform: LocalPlatform, config: LoadConfig, report: LoadReport) -> None:
    load = Load(platform, config, report)
    try:
        with log_window(platform.logs_dir) as logged:
            await load.run()
            await load.check_cascades()
        report.service_logs.update(logged)
        await load.key_reports()
        await load.check_expired_probes()
    finally:
        await load.http.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rotation_load", description=__doc__)
    defaults = LoadConfig()
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument("--jwt-rotations", type=int, default=defaults.jwt_rotations)
    parser.add_argument("--internal-rotations", type=int, default=defaults.internal_rotations)
    parser.add_argument(
        "--token-ttl",
        type=int,
        default=defaults.token_ttl,
        help="auth's token lifetime (>= 60); each JWT rotation lasts about this + 5 s leeway",
    )
    parser.add_argument("--margin", type=float, default=defaults.margin)
    parser.add_argument("--propagation-delay", type=float, default=defaults.propagation_delay)
    parser.add_argument("--max-seconds", type=float, default=defaults.max_seconds)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workdir", type=Path, default=None, help="keep state and logs here")
    args = parser.parse_args(argv)
    config = LoadConfig(
        users=args.users,
        jwt_rotations=args.jwt_rotations,
        internal_rotations=args.internal_rotations,
        token_ttl=args.token_ttl,
        margin=args.margin,
        propagation_delay=args.propagation_delay,
        max_seconds=args.max_seconds,
        seed=args.seed,
        workdir=args.workdir,
    )
    report = run_load(config)
    print(report.render(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
