"""A MongoDB wire-protocol server for local mode and tests, found or started in this order:

1. ``MONGO_URI`` if set (an existing server; nothing is started);
2. the engine ``CHECKOUT_DB_ENGINE`` names, if set (``ENGINES`` below);
3. ``mongod`` on PATH, started on a free localhost port with a temporary data directory;
4. mongo-java-server (pinned version, H2 backend: ``java-h2``), built once per machine with Maven
   into a cache folder keyed by version and run on a JRE;
5. where Java or Maven is missing (or the jar cannot be built), FerretDB (pinned version, SQLite
   backend), built once per machine with the ordinary ``go`` tool, saying why on stderr; under
   ``CI=true``, where Java is always installed, the missing Java is an ``EngineError`` instead.

Every engine started here listens on 127.0.0.1 only, keeps its data in the work folder it is
given, and is stopped (with its helper processes: PostgreSQL's server) by ``MongoServer.stop()``.
What each costs and which are correct: ``bench/engines.py`` and bench/README.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from services.local.processes import stop_process

FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.2"
# de.bwaldvogel:mongo-java-server, pinned in services/local/engines/java/pom.xml too.
MONGO_JAVA_SERVER_VERSION = "1.47.0"
JAVA_PROJECT = Path(__file__).resolve().parent / "engines" / "java"
JAVA_JAR = "checkout-mongo-java-server.jar"

ENGINE_VARIABLE = "CHECKOUT_DB_ENGINE"
# The default: atomic conditional updates (so the services take no leases) and the least database
# CPU per add-to-cart of the engines bench/engines.py measures; FerretDB where Java is missing.
DEFAULT_ENGINE = "java-h2"
FALLBACK_ENGINE = "ferretdb-sqlite"
ENGINES: dict[str, str] = {
    "ferretdb-sqlite": f"FerretDB {FERRETDB_VERSION} on SQLite (built with go)",
    "ferretdb-postgres": (
        f"FerretDB {FERRETDB_VERSION} on a PostgreSQL server of its own (Debian's postgresql)"
    ),
    "java-memory": (
        f"mongo-java-server {MONGO_JAVA_SERVER_VERSION}, memory backend (data lost on stop; "
        "built once with Maven, runs on a JRE)"
    ),
    "java-h2": (
        f"mongo-java-server {MONGO_JAVA_SERVER_VERSION}, H2 MVStore file backend (the default)"
    ),
    "mongod": "mongod from PATH",
}
# The server family each engine reports as MongoServer.kind (what the tests branch on).
_KINDS = {
    "ferretdb-sqlite": "ferretdb",
    "ferretdb-postgres": "ferretdb",
    "java-memory": "mongo-java-server",
    "java-h2": "mongo-java-server",
    "mongod": "mongod",
}
# A small, throw-away PostgreSQL for local mode and tests: no TCP (a socket in a private
# folder), and no fsync. A power cut or OS crash can lose or corrupt its data (a crash of
# PostgreSQL itself cannot); a clean stop (MongoServer.stop(), SIGINT) writes everything out.
POSTGRES_SETTINGS = {
    "listen_addresses": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "64MB",
    "max_connections": "100",
    "log_min_messages": "warning",
    "timezone": "UTC",
}
POSTGRES_PORT = 5432  # only names the socket file; the socket's folder is private


class EngineError(RuntimeError):
    """The engine asked for is unknown, or this machine cannot build or run it."""


def cache_dir() -> Path:
    base = os.environ.get("CHECKOUT_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "checkout-platform"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def engine_from_env(value: str | None = None) -> str | None:
    """The engine ``CHECKOUT_DB_ENGINE`` (or ``value``) names; None when it is unset or empty.
    An unknown name is an ``EngineError`` that names the variable and the allowed values."""
    raw = os.environ.get(ENGINE_VARIABLE, "") if value is None else value
    name = raw.strip()
    if not name:
        return None
    if name not in ENGINES:
        raise EngineError(
            f"{ENGINE_VARIABLE}={raw!r} is not an engine local mode can start; "
            f"allowed values: {', '.join(ENGINES)}"
        )
    return name


def default_engine() -> str:
    """The engine started when neither ``MONGO_URI`` nor ``CHECKOUT_DB_ENGINE`` names one:
    ``mongod`` from PATH, else ``DEFAULT_ENGINE`` (its jar built first if this machine has none),
    else, where Java cannot run it and not under ``CI=true``, ``FALLBACK_ENGINE``, saying why
    on stderr."""
    if shutil.which("mongod"):
        return "mongod"
    problem = _default_engine_problem()
    if not problem:
        return DEFAULT_ENGINE
    wanted = (
        f"the default database engine, {DEFAULT_ENGINE} (mongo-java-server "
        f"{MONGO_JAVA_SERVER_VERSION}), cannot run here: {problem} (Debian: apt-get install "
        "default-jdk-headless maven; make dev and make test install them as root)"
    )
    if os.environ.get("CI") == "true":
        raise EngineError(wanted)
    if not ferretdb_available():
        raise EngineError(
            f"No MongoDB server: {wanted}; nor can FerretDB {FERRETDB_VERSION} be built "
            "without Go. Set MONGO_URI, put mongod on PATH, or install Java and Maven (or Go)."
        )
    print(f"{wanted}; starting {FALLBACK_ENGINE} instead", file=sys.stderr, flush=True)
    return FALLBACK_ENGINE


@functools.cache
def _default_engine_problem() -> str:
    """Why ``DEFAULT_ENGINE`` cannot run here ('' when it can), found once per process: a
    Maven build that fails is not tried again by every server a test run starts."""
    if java_binary() is None:
        return "no java on PATH"
    try:
        java_server_jar()
    except EngineError as exc:
        return str(exc)
    except subprocess.CalledProcessError as exc:
        return f"the Maven build failed ({exc})"
    return ""


def ferretdb_available() -> bool:
    """Whether FerretDB is built here or can be (Go is installed)."""
    return shutil.which("go") is not None or _ferretdb_target().exists()


def _cached(target: Path, build: Callable[[Path], None]) -> Path:
    """``target``, built by ``build(target)`` first if this machine has none: once per
    machine, even when several processes (pytest-xdist workers) ask at the same moment."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            build(target)
    return target


def ferretdb_binary() -> Path:
    """Path of the cached FerretDB binary, building it first if this machine has none."""
    return _cached(_ferretdb_target(), _build_ferretdb)


def _ferretdb_target() -> Path:
    return cache_dir() / "ferretdb" / FERRETDB_VERSION / "ferretdb"


def _build_ferretdb(target: Path) -> None:
    if shutil.which("go") is None:
        raise EngineError(
            f"FerretDB {FERRETDB_VERSION} is built once with Go, and go is not installed "
            "(https://go.dev/doc/install)"
        )
    started = time.monotonic()
    print(f"building FerretDB {FERRETDB_VERSION} (once per machine) ...", flush=True)
    info = json.loads(
        subprocess.run(
            ["go", "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    with tempfile.TemporaryDirectory(prefix="ferretdb-src-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(info["Dir"], src)
        for path in src.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)
        # The module zip leaves out the generated version file the binary insists on.
        (src / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
        partial = target.with_suffix(".partial")
        subprocess.run(
            ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(partial), "./cmd/ferretdb"],
            cwd=src,
            check=True,
        )
        partial.rename(target)
    print(f"built FerretDB in {time.monotonic() - started:.0f}s -> {target}", flush=True)


def _java_sources_digest() -> str:
    digest = hashlib.sha256()
    files = [JAVA_PROJECT / "pom.xml", *sorted((JAVA_PROJECT / "src").rglob("*.java"))]
    for path in files:
        digest.update(path.relative_to(JAVA_PROJECT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def java_server_jar() -> Path:
    """Path of the cached mongo-java-server jar (services/local/engines/java), built with
    Maven first if this machine has none; keyed by the library's version and the sources."""
    folder = f"{MONGO_JAVA_SERVER_VERSION}-{_java_sources_digest()}"
    return _cached(cache_dir() / "mongo-java-server" / folder / JAVA_JAR, _build_java_server)


def _build_java_server(target: Path) -> None:
    missing = [tool for tool in ("mvn", "javac") if shutil.which(tool) is None]
    if missing:
        raise EngineError(
            f"mongo-java-server {MONGO_JAVA_SERVER_VERSION} is built once with Maven and a JDK, "
            f"and {' and '.join(missing)} is not installed "
            "(Debian: apt-get install maven default-jdk-headless)"
        )
    started = time.monotonic()
    print(
        f"building mongo-java-server {MONGO_JAVA_SERVER_VERSION} (once per machine) ...", flush=True
    )
    with tempfile.TemporaryDirectory(prefix="mongo-java-server-src-") as tmp:
        src = Path(tmp) / "java"
        shutil.copytree(JAVA_PROJECT, src, ignore=shutil.ignore_patterns("target"))
        subprocess.run(["mvn", "-q", "-B", "package"], cwd=src, check=True)
        partial = target.with_suffix(".partial")
        shutil.copyfile(src / "target" / JAVA_JAR, partial)
        partial.rename(target)
    print(f"built mongo-java-server in {time.monotonic() - started:.0f}s -> {target}", flush=True)


def postgres_bin_dir() -> Path | None:
    """The folder of PostgreSQL's ``initdb`` and ``postgres``: PATH's, else the newest of
    Debian's /usr/lib/postgresql/<version>/bin; None when PostgreSQL is not installed."""
    candidates = []
    found = shutil.which("postgres")
    if found:
        candidates.append(Path(found).resolve().parent)

    def version(path: Path) -> float:
        try:
            return float(path.parent.name)
        except ValueError:
            return 0.0

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    return None


def java_binary() -> str | None:
    return shutil.which("java")


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float, what: str = "MongoDB"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} server exited early:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(
        f"{what} server did not listen within {timeout}s:\n{log.read_text()[-2000:]}"
    )


@dataclass
class MongoServer:
    """A started (or borrowed) server; ``uri`` is what clients connect to.

    ``kind`` is the server's family (``external``, ``mongod``, ``ferretdb``,
    ``mongo-java-server``), ``engine`` the ``ENGINES`` name it was started as. ``helpers`` are
    processes the server needs (PostgreSQL's), stopped after it with SIGINT (PostgreSQL's fast
    shutdown); ``scratch`` folders are removed by ``stop()`` like an owned ``workdir``.
    """

    uri: str
    kind: str
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    engine: str = ""
    helpers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    scratch: list[Path] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list, repr=False)

    @property
    def pids(self) -> list[int]:
        """The engine's own processes (each with its children: PostgreSQL's backends)."""
        return [p.pid for p in (self.process, *self.helpers) if p is not None]

    def stop(self) -> None:
        stop_process(self.process, 10)
        for helper in reversed(self.helpers):
            _interrupt(helper, 30)
        for log in self._logs:
            log.close()
        self._logs.clear()
        for folder in [*self.scratch, *([self.workdir] if self.workdir else [])]:
            shutil.rmtree(folder, ignore_errors=True)


def _interrupt(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGINT (PostgreSQL: fast shutdown, clients disconnected, a checkpoint written), then
    SIGKILL after ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def find_or_start_mongo(
    workdir: Path | None = None, port: int | None = None, engine: str | None = None
) -> MongoServer:
    """The server of the module's docstring: ``MONGO_URI``'s, else the engine ``engine`` (or
    ``CHECKOUT_DB_ENGINE``, or ``default_engine()``: ``mongod``, mongo-java-server on H2 or
    FerretDB on SQLite) started on
    ``port`` (a free one by default) with its data in ``workdir`` (a temporary folder,
    removed by ``stop()``, by default). An ``engine`` given here is started even when
    ``MONGO_URI`` is set."""
    if engine is None:
        uri = os.environ.get("MONGO_URI")
        if uri:
            return MongoServer(uri=uri, kind="external", engine="external")
        engine = engine_from_env()
        if engine is None:
            engine = default_engine()
    elif engine not in ENGINES:
        engine_from_env(engine)  # raises, naming the allowed values
    return start_engine(engine, workdir, port)


def start_engine(
    engine: str,
    workdir: Path | None = None,
    port: int | None = None,
    *,
    sqlite_pragmas: Sequence[str] = (),
) -> MongoServer:
    """Start ``engine`` (a name of ``ENGINES``) on 127.0.0.1:``port``; see find_or_start_mongo.
    ``sqlite_pragmas`` (``"synchronous(normal)"`` …) go into FerretDB's SQLite URL as
    ``_pragma`` parameters, besides the ones FerretDB sets itself (WAL, busy_timeout)."""
    if engine not in ENGINES:
        engine_from_env(engine)
    owned = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="checkout-mongo-")) if workdir is None else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    server = MongoServer(
        uri=f"mongodb://127.0.0.1:{port}/",
        kind=_KINDS[engine],
        engine=engine,
        workdir=workdir if owned else None,
    )
    try:
        cmd = _prepare(engine, server, workdir.resolve(), port, sqlite_pragmas)
        log_path = workdir / f"{engine}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        server._logs.append(log)
        server.process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_for_port(port, server.process, log_path, timeout=60)
    except BaseException:
        server.stop()
        raise
    return server


def _prepare(
    engine: str, server: MongoServer, workdir: Path, port: int, sqlite_pragmas: Sequence[str]
) -> list[str]:
    """The command line of ``engine``'s server; helpers it needs are started here."""
    if engine == "mongod":
        mongod = shutil.which("mongod")
        if mongod is None:
            raise EngineError(f"{ENGINE_VARIABLE}=mongod: no mongod on PATH")
        (workdir / "db").mkdir(exist_ok=True)
        db = str(workdir / "db")
        return [mongod, "--dbpath", db, "--port", str(port), "--bind_ip", "127.0.0.1", "--quiet"]
    if engine.startswith("java-"):
        java = java_binary()
        if java is None:
            raise EngineError(
                f"{ENGINE_VARIABLE}={engine}: no java on PATH "
                "(Debian: apt-get install default-jre-headless)"
            )
        jar = java_server_jar()
        backend = ["--backend", "memory"]
        if engine == "java-h2":
            (workdir / "java-h2").mkdir(exist_ok=True)
            backend = ["--backend", "h2", "--h2-file", str(workdir / "java-h2" / "data.mv")]
        # The serial collector and a bounded heap: a small server for one machine's tests.
        jvm = ["-XX:+UseSerialGC", "-Xmx1g", "-Xss512k", "-XX:+ExitOnOutOfMemoryError"]
        logging = ["-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"]
        return [java, *jvm, *logging, "-jar", str(jar), "--port", str(port), *backend]
    ferretdb = [
        str(ferretdb_binary()),
        f"--listen-addr=127.0.0.1:{port}",
        f"--state-dir={workdir}",
        "--debug-addr=-",
        "--telemetry=disable",
        "--log-level=warn",
    ]
    if engine == "ferretdb-sqlite":
        (workdir / "sqlite").mkdir(exist_ok=True)
        query = urllib.parse.urlencode([("_pragma", p) for p in sqlite_pragmas])
        url = f"file:{workdir / 'sqlite'}/" + (f"?{query}" if query else "")
        return [*ferretdb, "--handler=sqlite", f"--sqlite-url={url}"]
    socket_dir = _start_postgres(server, workdir)
    url = f"postgres://postgres@/postgres?host={socket_dir}&port={POSTGRES_PORT}"
    return [*ferretdb, "--handler=postgresql", f"--postgresql-url={url}"]


def _postgres_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: as root, its processes run as ``postgres`` (Debian's
    package makes that user) or ``nobody``. None: run as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise EngineError("PostgreSQL cannot run as root and there is no postgres or nobody user")


def _reachable_by(user: pwd.struct_passwd, folder: Path, ours: Path) -> None:
    """Let ``user`` reach ``folder``: ``ours`` (the work folder) may be opened for traversal
    (o+x, not reading); any other folder on the way that it cannot pass is an error."""
    for parent in [folder, *folder.parents]:
        info = parent.stat()
        if info.st_uid == user.pw_uid or info.st_mode & stat.S_IXOTH:
            continue
        if info.st_gid == user.pw_gid and info.st_mode & stat.S_IXGRP:
            continue
        if parent == ours:
            parent.chmod(info.st_mode | stat.S_IXOTH)
            continue
        raise EngineError(
            f"{ENGINE_VARIABLE}=ferretdb-postgres: PostgreSQL runs as user {user.pw_name} here "
            f"(it refuses root) and cannot enter {parent}; give the platform a work folder "
            "that user can reach (under /tmp, or the repository's .local/)"
        )


def _start_postgres(server: MongoServer, workdir: Path) -> Path:
    """initdb (the first time) and start PostgreSQL with its data in ``workdir/postgres``;
    returns the folder of its Unix socket."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise EngineError(
            f"{ENGINE_VARIABLE}=ferretdb-postgres: PostgreSQL is not installed "
            "(Debian: apt-get install postgresql; initdb and postgres are looked for on PATH "
            "and in /usr/lib/postgresql/*/bin)"
        )
    user = _postgres_user()
    data = workdir / "postgres"
    data.mkdir(mode=0o700, exist_ok=True)
    socket_dir = data
    if len(str(data / f".s.PGSQL.{POSTGRES_PORT}")) > 100:  # a Unix socket path's limit
        socket_dir = Path(tempfile.mkdtemp(prefix="checkout-pg-"))
        server.scratch.append(socket_dir)
    uid = gid = None
    groups: list[int] | None = None
    if user is not None:
        _reachable_by(user, workdir, workdir)
        for folder in {data, socket_dir}:
            os.chown(folder, user.pw_uid, user.pw_gid)
        if socket_dir != data:
            _reachable_by(user, socket_dir, socket_dir)
        uid, gid, groups = user.pw_uid, user.pw_gid, []
    log = open(workdir / "postgres.log", "ab")  # noqa: SIM115 - closed in stop()
    server._logs.append(log)
    env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
    if not (data / "PG_VERSION").exists():
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            check=True, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=data,
            user=uid, group=gid, extra_groups=groups,
        )  # fmt: skip
    settings = [f"--{k.replace('_', '-')}={v}" for k, v in POSTGRES_SETTINGS.items()]
    postgres = subprocess.Popen(
        [str(bin_dir / "postgres"), "-D", str(data), "-k", str(socket_dir),
         "-p", str(POSTGRES_PORT), *settings],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=data, start_new_session=True,
        user=uid, group=gid, extra_groups=groups,
    )  # fmt: skip
    server.helpers.append(postgres)
    _wait_for_postgres(postgres, data, workdir / "postgres.log", timeout=60)
    return socket_dir


def _wait_for_postgres(
    process: subprocess.Popen[bytes], data: Path, log: Path, timeout: float
) -> None:
    """Until postmaster.pid says ``ready`` (its eighth line, PostgreSQL 10 and later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited early:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            lines = (data / "postmaster.pid").read_text().splitlines()
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
        time.sleep(0.05)
    raise RuntimeError(f"PostgreSQL not ready within {timeout}s:\n{log.read_text()[-2000:]}")
