"""The whole platform as local processes: a MongoDB-protocol server, the four services and the
storefront.

``LocalPlatform`` is what ``make dev`` runs and what the cross-service tests and benchmarks start:
every service is a separate ``python -m services.<name>`` process on its own port, wired to the
others by URL exactly as in Kubernetes, reading its keyrings from files in ``keys_dir`` (so a
rotation in local mode is a file rewrite, as a Secret update is in a cluster).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from services.keys.files import write_atomically
from services.keys.keyring import dump_keyring, generate_key
from services.keys.report import RingName
from services.keys.rotation import make_kid
from services.local.mongo_server import MongoServer, find_or_start_mongo, free_port
from services.local.processes import stop_process

SERVICES = ("auth", "product", "cart", "order")
STOREFRONT = "storefront"
# Everything local mode can run: the four API services, and the shop in front of them.
PROCESSES = (*SERVICES, STOREFRONT)
DEV_PORTS = {"storefront": 8000, "auth": 8001, "product": 8002, "cart": 8003, "order": 8004}
ADMIN_EMAIL = "admin@checkout.local"


class PlatformError(RuntimeError):
    """A service did not start; the message carries the end of its log."""


def ensure_keyrings(keys_dir: Path) -> tuple[Path, Path]:
    """A JWT ring and an internal API-key ring, made once (fresh random keys) and then kept."""
    jwt_file, internal_file = keys_dir / "jwt.json", keys_dir / "internal.json"
    ring: RingName
    for path, ring in ((jwt_file, "jwt"), (internal_file, "internal")):
        if not path.exists():
            # The same key-id format rotation uses, so a ring's age can be read from its kid.
            kid = make_kid(ring, time.time(), secrets.token_hex(3))
            write_atomically(path, dump_keyring(kid, [generate_key(kid)]))
    return jwt_file, internal_file


def ensure_csrf_secret(path: Path) -> Path:
    """The secret the storefront signs its forms' CSRF tokens with, made once and then kept (so
    a form open across a restart still posts)."""
    if not path.exists():
        write_atomically(path, secrets.token_urlsafe(36).encode())
    return path


def ensure_admin_credentials(path: Path) -> tuple[str, str]:
    """The bootstrap admin's email and password, made once and kept in a private file."""
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        return str(data["email"]), str(data["password"])
    password = secrets.token_urlsafe(18)
    body = json.dumps({"email": ADMIN_EMAIL, "password": password}, indent=2) + "\n"
    write_atomically(path, body.encode())
    return ADMIN_EMAIL, password


def bind_port(port: int) -> socket.socket:
    """A TCP socket bound to 127.0.0.1:``port`` (0: any free port), not yet listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class ServiceProcess:
    """One service as a process. Its port is bound here and the socket handed to the process
    (LISTEN_FD), so the port it was given is the one it serves, even while other platforms pick
    free ports at the same moment."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    sock: socket.socket | None = None
    """The bound socket for the first start; a restart binds the port again."""
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        # Bound again on a restart; the process keeps the only copy, so once it stops, the port
        # refuses connections as a stopped service's should.
        sock, self.sock = self.sock or bind_port(self.port), None
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}"],
                env={**self.env, "LISTEN_FD": str(sock.fileno())},
                pass_fds=(sock.fileno(),),
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal reaches the runner, which stops us
            )
        finally:
            sock.close()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise PlatformError(
                        f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                try:
                    response = client.get("/readyz")
                    if response.status_code == 200:
                        return
                    last = response.text
                except httpx.TransportError as exc:
                    last = repr(exc)
                time.sleep(0.1)
        raise PlatformError(
            f"{self.name} not ready after {timeout:.0f}s ({last}):\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        stop_process(self.process, timeout)  # uvicorn shuts down gracefully on TERM
        if self._log is not None:
            self._log.close()
            self._log = None


class LocalPlatform:
    """``with LocalPlatform(workdir) as platform:`` — everything started, ready and wired.

    ``ports`` fixes the ports (``make dev``: the storefront on 8000, the services on 8001-8004);
    by default free ports are taken, so several platforms (test workers) can run side by side.
    ``mongo`` reuses a running server; otherwise one is started (``MONGO_URI``,
    ``CHECKOUT_DB_ENGINE``'s engine, ``mongod``, or mongo-java-server on H2 (FerretDB where Java
    is missing), in that order; ``mongo_engine`` names the engine instead, see
    services/local/mongo_server.py) and its data kept under
    ``workdir/mongo`` unless ``ephemeral_mongo`` is set. ``db_prefix`` names the databases
    ``<prefix>auth`` … so platforms sharing a server stay apart. ``services`` names the
    processes to run: the four API services by default; add ``"storefront"`` for the shop.
    ``otlp_endpoint`` turns tracing on in every process (``OTEL_EXPORTER_OTLP_ENDPOINT``, e.g. a
    `services.local.jaeger.JaegerServer`'s); otherwise it is off, whatever the caller's
    environment says.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        ports: Mapping[str, int] | None = None,
        token_ttl_seconds: int | None = None,
        mongo: MongoServer | None = None,
        ephemeral_mongo: bool = False,
        mongo_engine: str | None = None,
        db_prefix: str = "",
        service_env: Mapping[str, Mapping[str, str]] | None = None,
        load_catalogue: bool = True,
        services: Sequence[str] = SERVICES,
        otlp_endpoint: str | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.keys_dir = self.workdir / "keys"
        self.logs_dir = self.workdir / "logs"
        self.admin_file = self.workdir / "admin.json"
        self._fixed_ports = {name for name, port in (ports or {}).items() if port}
        self.ports = {name: (ports or {}).get(name) or free_port() for name in PROCESSES}
        self.urls = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        self.token_ttl_seconds = token_ttl_seconds
        self.db_prefix = db_prefix
        self.service_env = service_env or {}
        self.should_load_catalogue = load_catalogue and "product" in services
        unknown = set(services) - set(PROCESSES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; known: {', '.join(PROCESSES)}")
        self.service_names = tuple(services)
        self.otlp_endpoint = otlp_endpoint
        self._given_mongo = mongo
        self._ephemeral_mongo = ephemeral_mongo
        self._mongo_engine = mongo_engine
        self.mongo: MongoServer | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.admin_email = ""
        self.admin_password = ""

    @property
    def jwt_keyring(self) -> Path:
        return self.keys_dir / "jwt.json"

    @property
    def internal_keyring(self) -> Path:
        return self.keys_dir / "internal.json"

    @property
    def csrf_secret_file(self) -> Path:
        return self.keys_dir / "csrf-secret"

    def _base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        if self.otlp_endpoint:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.otlp_endpoint
        return env

    def _storefront_env(self) -> dict[str, str]:
        # The shop has no database and no keys of the platform: the services' URLs and the
        # secret its forms are signed with.
        env = {
            **self._base_env(),
            "SERVICE_NAME": STOREFRONT,
            "HOST": "127.0.0.1",
            "PORT": str(self.ports[STOREFRONT]),
            "CSRF_SECRET_FILE": str(self.csrf_secret_file),
            "PYTHONUNBUFFERED": "1",
            **{f"{name.upper()}_URL": self.urls[name] for name in SERVICES},
        }
        env.update(self.service_env.get(STOREFRONT, {}))
        return env

    def env_for(self, name: str) -> dict[str, str]:
        """The environment ``name``'s process runs with (as ``python -m services.<name>``)."""
        if name == STOREFRONT:
            return self._storefront_env()
        assert self.mongo is not None
        env = {
            **self._base_env(),
            "SERVICE_NAME": name,
            "HOST": "127.0.0.1",
            "PORT": str(self.ports[name]),
            "MONGO_URI": self.mongo.uri,
            "MONGO_DB": f"{self.db_prefix}{name}",
            "JWT_KEYRING_FILE": str(self.jwt_keyring),
            "INTERNAL_KEYRING_FILE": str(self.internal_keyring),
            "KEYRING_CHECK_INTERVAL_SECONDS": "0.5",
            "PYTHONUNBUFFERED": "1",
        }
        for other in SERVICES:
            if other != name:
                env[f"{other.upper()}_URL"] = self.urls[other]
        if name == "auth":
            env["BOOTSTRAP_ADMIN_EMAIL"] = self.admin_email
            env["BOOTSTRAP_ADMIN_PASSWORD_FILE"] = str(self.workdir / "admin-password")
            if self.token_ttl_seconds is not None:
                env["ACCESS_TOKEN_TTL_SECONDS"] = str(self.token_ttl_seconds)
        env.update(self.service_env.get(name, {}))
        return env

    def start(self) -> LocalPlatform:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ensure_keyrings(self.keys_dir)
        ensure_csrf_secret(self.csrf_secret_file)
        self.admin_email, self.admin_password = ensure_admin_credentials(self.admin_file)
        write_atomically(self.workdir / "admin-password", self.admin_password.encode())
        if self._given_mongo is not None:
            self.mongo = self._given_mongo
        elif self._ephemeral_mongo:
            self.mongo = find_or_start_mongo(engine=self._mongo_engine)
        else:
            self.mongo = find_or_start_mongo(self.workdir / "mongo", engine=self._mongo_engine)
        sockets: dict[str, socket.socket] = {}
        try:
            # Every port is bound before any service is told the others' URLs.
            for name in self.service_names:
                sockets[name] = self._bind(name)
            for name in self.service_names:
                self.services[name] = ServiceProcess(
                    name,
                    self.ports[name],
                    self.env_for(name),
                    self.logs_dir / f"{name}.log",
                    sockets.pop(name),
                )
                self.services[name].start()
            for service in self.services.values():
                service.wait_ready()
            if self.should_load_catalogue:
                self.load_catalogue()
        except BaseException:
            for sock in sockets.values():
                sock.close()
            self.stop()
            raise
        return self

    def _bind(self, name: str) -> socket.socket:
        """The service's port, bound; a port picked as free but taken since is picked again
        (a port that was asked for is an error)."""
        for _ in range(20):
            try:
                return bind_port(self.ports[name])
            except OSError as exc:
                if name in self._fixed_ports:
                    raise PlatformError(f"{name}: port {self.ports[name]}: {exc.strerror}") from exc
                self.ports[name] = free_port()
                self.urls[name] = f"http://127.0.0.1:{self.ports[name]}"
        raise PlatformError(f"{name}: no free port found")

    def load_catalogue(self) -> str:
        """Load the sample catalogue with the documented command; returns its summary line."""
        result = subprocess.run(
            [sys.executable, "-m", "services.product", "load-catalogue"],
            env=self.env_for("product"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise PlatformError(f"load-catalogue failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout.strip()

    def stop_service(self, name: str) -> None:
        self.services[name].stop()

    def start_service(self, name: str, *, wait: bool = True) -> None:
        self.services[name].start()
        if wait:
            self.services[name].wait_ready()

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()
        if self.mongo is not None and self.mongo is not self._given_mongo:
            self.mongo.stop()
        self.mongo = None

    def __enter__(self) -> LocalPlatform:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
