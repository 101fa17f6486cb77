"""Jaeger v2 all-in-one as a local process: the trace store of ``TRACING=1 make dev`` and of the
trace tests. The binary is built once per machine from its Go module by
``k8s/offline/go/jaeger/build.sh`` (``JAEGER`` names a prebuilt one instead); it runs with
``services/local/jaeger.yaml`` (OTLP in, memory storage, everything on 127.0.0.1) and is asked
for traces through its HTTP query API (``/api/traces``, what its UI uses)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from services.local.builds import BuildFailed, built_folder
from services.local.mongo_server import free_port
from services.local.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "k8s" / "offline" / "go" / "jaeger" / "build.sh"
CONFIG = Path(__file__).resolve().parent / "jaeger.yaml"
# A cold build took about ten minutes on two cores shared with other work.
BUILD_TIMEOUT_SECONDS = 60 * 60
DEV_PORTS = {"otlp_http": 4318, "otlp_grpc": 4317, "query": 16686, "query_grpc": 16685}


class JaegerError(RuntimeError):
    """Jaeger could not be built or did not start; the message says why."""


def jaeger_binary() -> Path:
    """``JAEGER`` when set, else the binary build.sh makes (once; then it only prints where)."""
    given = os.environ.get("JAEGER")
    if given:
        return Path(given)
    try:
        folder = built_folder(BUILD_SCRIPT, timeout=BUILD_TIMEOUT_SECONDS)
    except BuildFailed as exc:
        raise JaegerError(
            f"{exc} (its output is on stderr); set JAEGER to use a prebuilt binary instead"
        ) from exc
    return folder / "jaeger"


@dataclass
class JaegerServer:
    """``JaegerServer(log_path).start()``: Jaeger on free ports (or ``ports``), ready to take
    OTLP at ``otlp_endpoint`` and answer queries at ``query_url``."""

    log_path: Path
    ports: Mapping[str, int] = field(default_factory=dict)
    binary: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.ports = {name: self.ports.get(name) or free_port() for name in DEV_PORTS}

    @property
    def otlp_endpoint(self) -> str:
        """What ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set to (OTLP over HTTP)."""
        return f"http://127.0.0.1:{self.ports['otlp_http']}"

    @property
    def query_url(self) -> str:
        """The UI, and the query API under ``/api``."""
        return f"http://127.0.0.1:{self.ports['query']}"

    def start(self, timeout: float = 60.0) -> JaegerServer:
        binary = self.binary or jaeger_binary()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {
            **os.environ,
            "CHECKOUT_JAEGER_OTLP_HTTP_PORT": str(self.ports["otlp_http"]),
            "CHECKOUT_JAEGER_OTLP_GRPC_PORT": str(self.ports["otlp_grpc"]),
            "CHECKOUT_JAEGER_QUERY_PORT": str(self.ports["query"]),
            "CHECKOUT_JAEGER_QUERY_GRPC_PORT": str(self.ports["query_grpc"]),
        }
        self.process = subprocess.Popen(
            [str(binary), "--config", str(CONFIG)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    code = self.process.returncode
                    raise JaegerError(f"jaeger exited with {code}:\n{self.tail()}")
                try:
                    query = client.get(f"{self.query_url}/api/services")
                    # The OTLP receiver answers 405 to a GET once it listens.
                    otlp = client.get(f"{self.otlp_endpoint}/v1/traces")
                    if query.status_code == 200 and otlp.status_code < 500:
                        return
                    last = f"query {query.status_code}, otlp {otlp.status_code}"
                except httpx.TransportError as exc:
                    last = repr(exc)
                time.sleep(0.2)
        raise JaegerError(f"jaeger not ready after {timeout:.0f}s ({last}):\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def traces(self, service: str, *, tags: Mapping[str, str] | None = None) -> list[Any]:
        """The traces that have a span of ``service`` (with ``tags`` on one of its spans), as the
        query API gives them: ``[{"traceID", "spans": [...], "processes": {...}}]``."""
        params: dict[str, Any] = {"service": service, "limit": 50, "lookback": "1h"}
        if tags:
            import json

            params["tags"] = json.dumps(dict(tags))
        response = httpx.get(f"{self.query_url}/api/traces", params=params, timeout=10)
        response.raise_for_status()
        data: list[Any] = response.json().get("data") or []
        return data

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        response = httpx.get(f"{self.query_url}/api/traces/{trace_id}", timeout=10)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        data = response.json().get("data") or []
        return data[0] if data else None

    def stop(self) -> None:
        stop_process(self.process, 10)
        if self._log is not None:
            self._log.close()
            self._log = None
