"""A MongoDB wire-protocol server for local mode and tests, found or started in this order:

1. ``MONGO_URI`` if set (an existing server; nothing is started);
2. ``mongod`` on PATH, started on a free localhost port with a temporary data directory;
3. FerretDB (pinned version, SQLite backend), built once per machine with the ordinary ``go``
   tool into a cache folder keyed by version, then started like ``mongod``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.local.processes import stop_process

FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.2"


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


def ferretdb_binary() -> Path:
    """Path of the cached FerretDB binary, building it first if this machine has none."""
    target = cache_dir() / "ferretdb" / FERRETDB_VERSION / "ferretdb"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per machine, even under pytest-xdist
        if not target.exists():
            _build_ferretdb(target)
    return target


def _build_ferretdb(target: Path) -> None:
    if shutil.which("go") is None:
        raise RuntimeError(
            "No MongoDB server: set MONGO_URI, put mongod on PATH, or install Go so FerretDB "
            f"{FERRETDB_VERSION} can be built."
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


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"MongoDB server exited early:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(
        f"MongoDB server did not listen within {timeout}s:\n{log.read_text()[-2000:]}"
    )


@dataclass
class MongoServer:
    """A started (or borrowed) server; ``uri`` is what clients connect to."""

    uri: str
    kind: str
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    _log: object = field(default=None, repr=False)

    def stop(self) -> None:
        stop_process(self.process, 10)
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def find_or_start_mongo(workdir: Path | None = None, port: int | None = None) -> MongoServer:
    """The server of the module's docstring: ``MONGO_URI``'s, else a ``mongod`` or FerretDB
    started on ``port`` (a free one by default) with its data in ``workdir`` (a temporary
    folder, removed by ``stop()``, by default)."""
    uri = os.environ.get("MONGO_URI")
    if uri:
        return MongoServer(uri=uri, kind="external")
    owned = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="checkout-mongo-")) if workdir is None else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    mongod = shutil.which("mongod")
    if mongod:
        (workdir / "db").mkdir(exist_ok=True)
        cmd = [mongod, "--dbpath", str(workdir / "db"), "--port", str(port)]
        cmd += ["--bind_ip", "127.0.0.1", "--quiet"]
        kind = "mongod"
    else:
        (workdir / "sqlite").mkdir(exist_ok=True)
        cmd = [
            str(ferretdb_binary()),
            "--handler=sqlite",
            f"--sqlite-url=file:{workdir / 'sqlite'}/",
            f"--listen-addr=127.0.0.1:{port}",
            f"--state-dir={workdir}",
            "--debug-addr=-",
            "--telemetry=disable",
            "--log-level=warn",
        ]
        kind = "ferretdb"
    log_path = workdir / f"{kind}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = MongoServer(
        uri=f"mongodb://127.0.0.1:{port}/",
        kind=kind,
        process=proc,
        workdir=workdir if owned else None,
        _log=log,
    )
    try:
        wait_for_port(port, proc, log_path, timeout=60)
    except Exception:
        server.stop()
        raise
    return server
