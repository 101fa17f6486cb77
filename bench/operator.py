"""The operator at scale: ``python -m bench.operator`` (``make bench-operator``).

Starts the real kube-apiserver and etcd the operator tests use (`tests.infra.kubeapi`, with its
audit log), installs the Checkout CRD, and runs the operator as its own process the way its chart
does (``kopf run --standalone -m checkout_operator --all-namespaces --liveness=...``, settings
from the environment), with ``HELM_BINARY`` pointing at a wrapper that appends a line to a counter
file for every ``helm template`` and then execs the real helm: the renders are counted outside
the operator. Then:

1. **apply** - creates N namespaces and one sample Checkout in each, and times the creation of the
   first until every Checkout is applied (its children written and ``observedGeneration`` set
   with the services' availability in the Ready condition, not an error);
2. **waiting** - nothing becomes available (no controller runs here): the operator's CPU over
   ``--waiting-window`` seconds;
3. **steady** - every Deployment and StatefulSet made available the way the tests do (their
   status subresource patched), every Checkout Ready, writes settled: CPU, renders and writes over
   ``--window`` seconds;
4. **memory** - the operator process's peak resident set (VmHWM).

CPU is user + system time of the operator process and its reaped children (helm) from
/proc/<pid>/stat, over wall time: a fraction of one core. API writes are the audit log's
create/update/patch/delete requests (dry runs left out) sent by the operator (kopf's or the
operator's own user agent). It prints, on stdout:

    bench-operator apply n=<n> seconds=<s> helm_renders=<r> api_writes=<w>
    bench-operator steady n=<n> cpu_core_fraction=<f> helm_renders=<r> api_writes=<w> window_s=<s>
    bench-operator waiting n=<n> cpu_core_fraction=<f>
    bench-operator memory n=<n> rss_mb=<m>

and the targets of issue 15, met or not, on stderr. Run it as a module (``-m``): as a file,
bench/ would come first on sys.path and this file would shadow the standard library's operator.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from services.local.processes import stop_process
from tests.infra.helm import WORKLOADS, prepared_helm
from tests.infra.kubeapi import KubeAPIServer
from tests.operator.cluster import Cluster, Refused, admin_api, install_crds, sample_checkout

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
USER_AGENT = "checkout-bench-operator"
OPERATOR_AGENTS = ("kopf/", "checkout-operator/")
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
NAME = "shop"
# The Ready condition's reasons once a Checkout's spec is applied (status.healthy_status).
APPLIED_REASONS = {"ServicesNotAvailable", "AllServicesAvailable"}

TARGET_APPLY_SECONDS = 60.0
TARGET_STEADY_CPU = 0.02
TARGET_WAITING_CPU = 0.10
TARGET_RSS_MB = 300.0


def log(message: str) -> None:
    print(f"[bench-operator {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime + stime of ``pid``, of its children it has waited for: helm), in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    # After the command: state is field 3; utime, stime, cutime, cstime are fields 14 to 17.
    own = (int(fields[14 - 3]) + int(fields[15 - 3])) / TICKS
    children = (int(fields[16 - 3]) + int(fields[17 - 3])) / TICKS
    return own, children


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and of its children it has waited for (helm), in seconds."""
    return sum(cpu_split(pid))


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["VmHWM"]


@dataclass
class Counters:
    """Where the render counter file and the audit log end, to count what came after."""

    renders: int
    audit: int


class Bench:
    def __init__(self, server: KubeAPIServer, workdir: Path, args: argparse.Namespace) -> None:
        self.server = server
        self.workdir = workdir
        self.args = args
        self.api = admin_api(server, user_agent=USER_AGENT)
        self.cluster = Cluster(self.api, server)
        self.counter = workdir / "helm-renders.log"
        self.counter.touch()
        self.process: subprocess.Popen[bytes] | None = None
        self.operator_log = workdir / "operator.log"
        self.namespaces = [f"bench-{i:03d}" for i in range(args.n)]

    # -- the operator ------------------------------------------------------------------------

    def helm_wrapper(self, real: Path) -> Path:
        wrapper = self.workdir / "counting-helm"
        wrapper.write_text(
            "#!/bin/sh\n"
            f'[ "$1" = template ] && echo "$2 $3 $5" >> {shlex.quote(str(self.counter))}\n'
            f'exec {shlex.quote(str(real))} "$@"\n'
        )
        wrapper.chmod(0o755)
        return wrapper

    def start_operator(self) -> None:
        log("preparing the charts (helm dependency build)")
        helm = prepared_helm(self.workdir / "helm")
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "operator")]),
            "CHECKOUT_CHARTS_DIR": str(helm.charts),
            "HELM_BINARY": str(self.helm_wrapper(helm.binary)),
            "HELM_CACHE_HOME": str(self.workdir / "helm-home" / "cache"),
            "HELM_CONFIG_HOME": str(self.workdir / "helm-home" / "config"),
            "HELM_DATA_HOME": str(self.workdir / "helm-home" / "data"),
            "CHECKOUT_KUBECONFIG": str(self.server.kubeconfig_path),
            "LOG_LEVEL": "INFO",
            **{
                f"CHECKOUT_DEFAULT_IMAGE_{w.upper()}": f"registry.example.com/checkout/{w}:0.1.0"
                for w in WORKLOADS
            },
        }
        if self.args.drift_interval is not None:
            env["CHECKOUT_DRIFT_INTERVAL_SECONDS"] = str(self.args.drift_interval)
        kopf = Path(sys.executable).with_name("kopf")
        argv = [
            str(kopf),
            "run",
            "--standalone",
            "-m",
            "checkout_operator",
            "--all-namespaces",
            f"--liveness=http://127.0.0.1:{port}/healthz",
        ]
        log(f"starting the operator: {' '.join(argv[1:])}")
        with self.operator_log.open("wb") as out:
            self.process = subprocess.Popen(
                argv, env=env, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the operator exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise SystemExit(
            f"the operator did not answer its liveness probe in 60 s\n{self.log_tail()}"
        )

    def stop_operator(self) -> None:
        stop_process(self.process, 30)

    def log_tail(self, lines: int = 30) -> str:
        text = self.operator_log.read_text(errors="replace") if self.operator_log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def pid(self) -> int:
        self.check_alive()
        assert self.process is not None
        return self.process.pid

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise SystemExit(f"the operator exited:\n{self.log_tail()}")

    # -- counting ----------------------------------------------------------------------------

    def counters(self) -> Counters:
        return Counters(renders=self.renders(), audit=self.server.audit_offset())

    def renders(self) -> int:
        return sum(1 for _ in self.counter.open())

    def writes_since(self, offset: int) -> list[dict[str, Any]]:
        events, _ = self.server.audit_events(offset)
        return [
            e
            for e in events
            if e.get("verb") in WRITE_VERBS
            and str(e.get("userAgent", "")).startswith(OPERATOR_AGENTS)
            and "dryRun=" not in e.get("requestURI", "")
        ]

    def requests_since(self, offset: int) -> collections.Counter[str]:
        """The operator's requests since audit-log ``offset``, by verb and resource."""
        events, _ = self.server.audit_events(offset)
        return collections.Counter(
            f"{e.get('verb')} {(e.get('objectRef') or {}).get('resource', e.get('requestURI'))}"
            + (" (dry run)" if "dryRun=" in e.get("requestURI", "") else "")
            for e in events
            if str(e.get("userAgent", "")).startswith(OPERATOR_AGENTS)
        )

    def since(self, start: Counters) -> tuple[int, int]:
        """(helm renders, API writes by the operator) since ``start``."""
        return self.renders() - start.renders, len(self.writes_since(start.audit))

    def cpu_over(self, seconds: float) -> float:
        """The operator's CPU (with helm's) over the next ``seconds``, as a fraction of a core."""
        pid = self.pid
        cpu, began = cpu_seconds(pid), time.monotonic()
        time.sleep(seconds)
        return (cpu_seconds(self.pid) - cpu) / (time.monotonic() - began)

    # -- the cluster -------------------------------------------------------------------------

    def checkouts(self) -> list[dict[str, Any]]:
        items = self.cluster.list("Checkout", None)
        return [c for c in items if c["metadata"]["namespace"] in set(self.namespaces)]

    def create_all(self) -> None:
        for namespace in self.namespaces:
            made = self.cluster.try_create("Namespace", None, {"metadata": {"name": namespace}})
            if isinstance(made, Refused) and made.status != 409:
                raise SystemExit(f"namespace {namespace}: {made}")
        for namespace in self.namespaces:
            self.cluster.create_checkout(namespace, sample_checkout(NAME))

    def wait_for(self, what: str, done: Any, timeout: float) -> float:
        """Poll ``done(checkouts)`` (a count of the finished ones) until all are; the time."""
        began = time.monotonic()
        last = -1
        while time.monotonic() - began < timeout:
            count = done(self.checkouts())
            if count != last:
                log(f"{what}: {count}/{self.args.n}")
                last = count
            if count >= self.args.n:
                return time.monotonic() - began
            self.check_alive()
            time.sleep(0.5)
        raise SystemExit(f"not all {what} within {timeout:.0f} s\n{self.log_tail()}")

    def make_available(self) -> None:
        for namespace in self.namespaces:
            self.cluster.make_available(namespace, NAME)

    def settle(self, calm: float, timeout: float) -> None:
        """Until the operator wrote nothing for ``calm`` seconds (at most ``timeout``)."""
        deadline = time.monotonic() + timeout
        offset = self.server.audit_offset()
        calm_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(1.0)
            if self.writes_since(offset):
                offset = self.server.audit_offset()
                calm_since = time.monotonic()
            elif time.monotonic() - calm_since >= calm:
                return
        log(f"the operator still writes after {timeout:.0f} s; measuring anyway")

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> int:
        n = self.args.n
        install_crds(self.api)
        self.start_operator()

        log(f"creating {n} namespaces and Checkouts")
        start = self.counters()
        began, cpu = time.monotonic(), cpu_split(self.pid)
        self.create_all()
        self.wait_for("applied", count_applied, self.args.timeout)
        apply_seconds = time.monotonic() - began
        apply_renders, apply_writes = self.since(start)
        print(
            f"bench-operator apply n={n} seconds={apply_seconds:.1f} "
            f"helm_renders={apply_renders} api_writes={apply_writes}",
            flush=True,
        )

        requests, after = self.requests_since(start.audit), cpu_split(self.pid)
        log(
            f"apply: {after[0] - cpu[0]:.1f} s of the operator's CPU, {after[1] - cpu[1]:.1f} s "
            f"of helm's; load average {os.getloadavg()[0]:.1f}; {sum(requests.values())} "
            "requests by the operator: "
            + ", ".join(f"{what} {count}" for what, count in requests.most_common())
        )
        time.sleep(self.args.settle)
        log(f"waiting: {self.args.waiting_window:.0f} s with no Deployment available")
        waiting_cpu = self.cpu_over(self.args.waiting_window)

        log("making every Deployment and StatefulSet available")
        self.make_available()
        self.wait_for("Ready", count_ready, self.args.timeout)
        # The rotation publishes its part of the status once the keyrings are there (its first
        # look may come before they are, and then waits): part of getting ready, not steady.
        self.wait_for("rotation status published", count_rotation_published, self.args.timeout)
        self.settle(calm=self.args.settle, timeout=max(120.0, self.args.settle * 4))
        log(f"steady: {self.args.window:.0f} s with nothing changing")
        start = self.counters()
        steady_cpu = self.cpu_over(self.args.window)
        steady_renders, steady_writes = self.since(start)
        if steady_writes:
            writes = collections.Counter(
                f"{w['verb']} {w['objectRef'].get('resource')}"
                + (f"/{w['objectRef']['subresource']}" if w["objectRef"].get("subresource") else "")
                for w in self.writes_since(start.audit)
            )
            log(f"steady writes: {dict(writes)}")
        not_ready = n - count_ready(self.checkouts())
        print(
            f"bench-operator steady n={n} cpu_core_fraction={steady_cpu:.4f} "
            f"helm_renders={steady_renders} api_writes={steady_writes} "
            f"window_s={self.args.window:.0f}",
            flush=True,
        )
        print(f"bench-operator waiting n={n} cpu_core_fraction={waiting_cpu:.4f}", flush=True)
        rss, peak = memory_mb(self.pid)
        print(f"bench-operator memory n={n} rss_mb={peak:.0f}", flush=True)
        log(f"memory: {rss:.0f} MB resident now, {peak:.0f} MB at the peak (reported)")
        if not_ready:
            log(f"{not_ready} Checkouts left Ready during the steady window")
        errors = [
            line
            for line in self.operator_log.read_text(errors="replace").splitlines()
            if "[ERROR" in line
        ]
        log(f"operator log: {len(errors)} ERROR lines ({self.operator_log})")

        met = {
            f"apply <= {TARGET_APPLY_SECONDS:.0f} s": apply_seconds <= TARGET_APPLY_SECONDS,
            f"steady <= {TARGET_STEADY_CPU:.0%} of a core": steady_cpu <= TARGET_STEADY_CPU,
            "steady: zero renders, zero writes": steady_renders == 0 and steady_writes == 0,
            f"waiting <= {TARGET_WAITING_CPU:.0%} of a core": waiting_cpu <= TARGET_WAITING_CPU,
            f"memory <= {TARGET_RSS_MB:.0f} MB": peak <= TARGET_RSS_MB,
        }
        for target, ok in met.items():
            log(f"target {target}: {'met' if ok else 'NOT met'}")
        if n != 100 or self.args.window != 300:
            log("the targets are stated for n=100 and a 300 s window")
        return 0


def ready_reason(checkout: dict[str, Any]) -> str | None:
    status = checkout.get("status") or {}
    if status.get("observedGeneration") != checkout["metadata"].get("generation"):
        return None
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    return None if ready is None else str(ready.get("reason"))


def count_applied(checkouts: list[dict[str, Any]]) -> int:
    return sum(1 for c in checkouts if ready_reason(c) in APPLIED_REASONS)


def count_rotation_published(checkouts: list[dict[str, Any]]) -> int:
    return sum(
        1
        for c in checkouts
        if any(
            cond.get("type") == "SecretsRotated"
            for cond in (c.get("status") or {}).get("conditions") or []
        )
    )


def count_ready(checkouts: list[dict[str, Any]]) -> int:
    return sum(1 for c in checkouts if ready_reason(c) == "AllServicesAvailable")


@contextlib.contextmanager
def workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    path = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.operator", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--n", type=int, default=100, help="Checkouts, one per namespace (100)")
    parser.add_argument("--window", type=float, default=300.0, help="steady window, s (300)")
    parser.add_argument("--waiting-window", type=float, default=60.0, help="waiting window, s (60)")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="calm before a window is measured, s (5)"
    )
    parser.add_argument(
        "--drift-interval",
        type=float,
        default=None,
        help="CHECKOUT_DRIFT_INTERVAL_SECONDS for the operator (default: its own)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="the longest wait for all applied/Ready (600)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs and counters here")
    args = parser.parse_args(argv)
    # Stopped (SIGTERM, or SIGINT even when started in the background, where the shell ignores
    # it): the blocks below still stop the operator and the API server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Five Services with a cluster IP per Checkout: more than the tests' /24 holds (pflag: the
    # last --service-cluster-ip-range given wins; the serving certificate's 10.0.0.1 stays first).
    server = KubeAPIServer(extra_apiserver_flags=["--service-cluster-ip-range=10.0.0.0/16"])
    with workdir(args.workdir) as path, server:
        log(f"kube-apiserver at {server.url} ({server.startup_seconds:.1f} s to start)")
        bench = Bench(server, path, args)
        try:
            return bench.run()
        finally:
            bench.stop_operator()
            bench.api.client.close()


if __name__ == "__main__":
    sys.exit(main())
