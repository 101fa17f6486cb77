"""How fast the platform serves: ``python -m bench.api`` (``make bench-api``).

Starts the platform in local mode (the four services as processes on a MongoDB-protocol server,
all on 127.0.0.1) and a bare Litestar app served the same way, then drives one endpoint at a time
with wrk (Debian's package): a C load generator with an event loop per thread, so the load it
offers is limited by the services and not by the client's own interpreter; it still shares the
machine's cores with the services, which the CPU figures below leave out (they count only the
services' and the database's processes).

Per endpoint it reports requests/s, p50 and p99 latency, failed requests (socket errors and
answers other than 2xx/3xx), the services' CPU milliseconds per request (all four processes,
from /proc), the database's CPU milliseconds per request, database commands and service calls
per request (the services' own counters on /metrics), and the ratio of requests/s to the bare app
measured in the same run. It ends with one line per endpoint:

    bench-api <endpoint> rps=<r> p50_ms=<m> p99_ms=<m> failed=<n> cpu_ms=<c> db_cpu_ms=<c>
      db_cmds=<n> calls=<n> ratio=<x>   (one line)

The last endpoint, ``overload``, is add-to-cart at 256 connections (8x the default) with every
answer due within 2 s: it adds ``shed=<503s with Retry-After> ok=<2xx> max_ms=<slowest>`` to its
line, and fails on an answer that is neither (or none within 2 s: wrk's timeout, a socket error).

It exits 1 when any request failed or the overload's slowest answer took 2 s or more.
``--seconds`` per endpoint (10), ``--connections`` (32),
``--only`` a comma-separated subset, ``--profile DIR`` also samples every service process with
py-spy during each endpoint and prints where its CPU went (``bench/profiles.py``).
``--no-tracing`` leaves out the tracing comparison: by default, when add-to-cart is measured,
Jaeger (services/local/jaeger.py, built once from its Go module) is started and a second cart and
product pair with tracing on (``OTEL_EXPORTER_OTLP_ENDPOINT`` to that Jaeger; the same databases)
is started beside the untraced ones; add-to-cart is then driven off, on, off, on (each
``--seconds``) and the line ``tracing: add to cart <X> req/s off, <Y> req/s on (<Z>% cost)``
printed (the averages of both rounds; ``add-to-cart-traced`` gets its own table row too).
``--engine`` picks the database engine local mode starts (``CHECKOUT_DB_ENGINE``'s values,
services/local/mongo_server.py); the database's CPU is that of all its processes and their
children (PostgreSQL's backends too).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.engines import tree_cpu_ticks
from bench.profiles import Recording, Summary
from services.keys.keyring import KeyRing
from services.kit.tokens import TokenService
from services.local.jaeger import JaegerError, JaegerServer
from services.local.mongo_server import ENGINES, free_port
from services.local.platform import SERVICES, LocalPlatform, ServiceProcess
from services.local.processes import stop_process

PASSWORD = "bench api password"
TICKS = os.sysconf("SC_CLK_TCK")
# wrk prints this line at the end (the done() hook of every script).
DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"status":%d,"socket":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


# For the overload endpoint: every answer sorted into 2xx, 503 with Retry-After (shed) and anything
# else, counted per wrk thread and summed at the end, with the slowest answer.
COUNTED = """
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function(args) ok = 0; shed = 0; other = 0 end
response = function(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1
  elseif status == 503 and (headers["retry-after"] or headers["Retry-After"]) then shed = shed + 1
  else other = other + 1 end
end
done = function(summary, latency, requests)
  local e, ok, shed, other = summary.errors, 0, 0, 0
  for _, t in ipairs(threads) do
    ok = ok + t:get("ok"); shed = shed + t:get("shed"); other = other + t:get("other")
  end
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"status":%d,"socket":%d,'
    .. '"ok":%d,"shed":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    other, e.connect + e.read + e.write + e.timeout, ok, shed, latency.max))
end
"""
# The overload endpoint: add-to-cart at 8x the connections, every answer due within 2 s (wrk
# counts a later one as a timeout, a failure), nothing but 2xx or 503 + Retry-After.
OVERLOAD_CONNECTIONS = 256
OVERLOAD_LIMIT_SECONDS = 2.0


@dataclass
class Endpoint:
    name: str
    service: str  # "bare" or a service name
    method: str
    path: str
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    # Lua for a request() that varies per request (bodies, tokens); replaces method/path/body.
    request_lua: str = ""
    # The overload endpoint's: its own connections, answers due within ``timeout_seconds``,
    # and the statuses counted (a 503 with Retry-After is an answer, not a failure).
    connections: int | None = None
    timeout_seconds: float = 10.0
    count_statuses: bool = False

    def script(self) -> str:
        lines = [f'wrk.method = "{self.method}"']
        if self.body:
            lines.append(f"wrk.body = {json.dumps(self.body)}")
        for name, value in {"Content-Type": "application/json", **self.headers}.items():
            lines.append(f'wrk.headers["{name}"] = "{value}"')
        done = COUNTED if self.count_statuses else DONE
        return "\n".join(lines) + "\n" + self.request_lua + done


@dataclass
class Result:
    endpoint: str
    rps: float
    p50_ms: float
    p99_ms: float
    failed: int
    requests: int
    cpu_ms: float
    db_cpu_ms: float
    db_cmds: float
    calls: float
    ratio: float = 0.0
    # Counted endpoints (overload): 2xx answers, 503s with Retry-After, the slowest answer.
    ok: int | None = None
    shed: int | None = None
    max_ms: float | None = None
    limit_ms: float | None = None

    def line(self) -> str:
        counted = (
            f" shed={self.shed} ok={self.ok} max_ms={self.max_ms:.1f}"
            if self.max_ms is not None
            else ""
        )
        return (
            f"bench-api {self.endpoint} rps={self.rps:.0f} p50_ms={self.p50_ms:.1f}"
            f" p99_ms={self.p99_ms:.1f} failed={self.failed} cpu_ms={self.cpu_ms:.2f}"
            f" db_cpu_ms={self.db_cpu_ms:.2f} db_cmds={self.db_cmds:.1f} calls={self.calls:.1f}"
            f" ratio={self.ratio:.3f}{counted}"
        )

    def too_slow(self) -> bool:
        return self.limit_ms is not None and (self.max_ms or 0.0) >= self.limit_ms


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def counters(urls: list[str]) -> tuple[float, float]:
    """(database commands, service calls) summed over the services' /metrics."""
    commands = calls = 0.0
    for url in urls:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        commands += sum(
            float(v) for v in re.findall(r"^checkout_db_commands_total\{.*\} (\S+)$", text, re.M)
        )
        calls += sum(
            float(v) for v in re.findall(r"^checkout_service_calls_total\{.*\} (\S+)$", text, re.M)
        )
    return commands, calls


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench-api: wrk is not installed (Debian: apt-get install wrk)")
    return found


def wrk_summary(
    url: str, script: Path, seconds: float, connections: int, timeout_seconds: float = 10.0
) -> dict[str, int]:
    """Drive ``url`` with wrk (two threads) and return the summary line of DONE (COUNTED)."""
    out = subprocess.run(
        [wrk_binary(), "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s",
         "--timeout", f"{timeout_seconds:g}s", "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    )  # fmt: skip
    summary: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return summary


class Bench:
    def __init__(
        self,
        platform: LocalPlatform,
        bare_url: str,
        seconds: float,
        connections: int,
        profile: Path | None = None,
    ):
        self.platform = platform
        self.profile = profile
        self.profiles: list[tuple[str, Summary]] = []
        self.urls = {**platform.urls, "bare": bare_url}
        self.seconds = seconds
        self.connections = connections
        self.service_pids = [
            p.process.pid for p in platform.services.values() if p.process is not None
        ]
        self.counter_urls = [platform.urls[s] for s in SERVICES]
        self.db_pids = platform.mongo.pids if platform.mongo else []
        self.scripts = Path(tempfile.mkdtemp(prefix="bench-api-"))

    def run(self, endpoint: Endpoint) -> Result:
        script = self.scripts / f"{endpoint.name}.lua"
        script.write_text(endpoint.script())
        service_urls = self.counter_urls
        cpu0, db0 = cpu_ticks(self.service_pids), tree_cpu_ticks(self.db_pids)
        cmds0, calls0 = counters(service_urls)
        connections = endpoint.connections or self.connections
        drive = functools.partial(
            wrk_summary,
            self.urls[endpoint.service] + endpoint.path,
            script,
            self.seconds,
            connections,
            endpoint.timeout_seconds,
        )
        if self.profile is not None and endpoint.service != "bare":
            pids = {
                name: p.process.pid
                for name, p in self.platform.services.items()
                if p.process is not None and name in SERVICES
            }
            with Recording(self.profile, endpoint.name, pids, self.seconds) as recording:
                summary = drive()
            self.profiles += [(endpoint.name, s) for s in recording.summaries()]
        else:
            summary = drive()
        cpu1, db1 = cpu_ticks(self.service_pids), tree_cpu_ticks(self.db_pids)
        cmds1, calls1 = counters(service_urls)
        n = max(1, summary["requests"])
        return Result(
            endpoint=endpoint.name,
            rps=summary["requests"] / (summary["duration_us"] / 1e6),
            p50_ms=summary["p50_us"] / 1000,
            p99_ms=summary["p99_us"] / 1000,
            failed=summary["status"] + summary["socket"],
            requests=summary["requests"],
            cpu_ms=(cpu1 - cpu0) / TICKS * 1000 / n if endpoint.service != "bare" else 0.0,
            db_cpu_ms=(db1 - db0) / TICKS * 1000 / n,
            db_cmds=(cmds1 - cmds0) / n,
            calls=(calls1 - calls0) / n,
            ok=summary.get("ok"),
            shed=summary.get("shed"),
            max_ms=summary["max_us"] / 1000 if "max_us" in summary else None,
            limit_ms=endpoint.timeout_seconds * 1000 if endpoint.count_statuses else None,
        )


def start_traced_pair(
    platform: LocalPlatform, jaeger: JaegerServer, logs: Path
) -> dict[str, ServiceProcess]:
    """A product and a cart with tracing on, beside the platform's own (same databases, keys
    and users); the traced cart calls the traced product, so both ends of its call are traced."""
    product_port, cart_port = free_port(), free_port()
    tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint}
    product_env = {**platform.env_for("product"), **tracing, "PORT": str(product_port)}
    cart_env = {
        **platform.env_for("cart"),
        **tracing,
        "PORT": str(cart_port),
        "PRODUCT_URL": f"http://127.0.0.1:{product_port}",
    }
    pair = {
        "product": ServiceProcess(
            "product", product_port, product_env, logs / "product-traced.log"
        ),
        "cart": ServiceProcess("cart", cart_port, cart_env, logs / "cart-traced.log"),
    }
    try:
        for process in pair.values():
            process.start()
        for process in pair.values():
            process.wait_ready()
    except BaseException:
        for process in pair.values():
            process.stop()
        raise
    return pair


def tracing_line(off: list[Result], on: list[Result]) -> str:
    rps_off = sum(r.rps for r in off) / len(off)
    rps_on = sum(r.rps for r in on) / len(on)
    cost = (1 - rps_on / rps_off) * 100 if rps_off else 0.0
    return f"tracing: add to cart {rps_off:.0f} req/s off, {rps_on:.0f} req/s on ({cost:.1f}% cost)"


def lua_list(values: list[str]) -> str:
    return "{" + ",".join(json.dumps(v) for v in values) + "}"


def endpoints(platform: LocalPlatform) -> list[Endpoint]:
    """The endpoints, with the data they need made first."""
    urls = platform.urls
    admin = httpx.post(
        f"{urls['auth']}/api/v1/auth/token",
        json={"email": platform.admin_email, "password": platform.admin_password},
        timeout=30,
    ).json()["accessToken"]
    listed = httpx.get(f"{urls['product']}/api/v1/products", params={"pageSize": 50}).json()
    products = [item["id"] for item in listed["items"]]
    for pid in products:  # stock that no benchmark can run out of
        httpx.patch(
            f"{urls['product']}/api/v1/products/{pid}",
            json={"stock": 1_000_000},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=30,
        ).raise_for_status()
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    credentials = {"email": email, "password": PASSWORD}
    httpx.post(f"{urls['auth']}/api/v1/auth/register", json=credentials, timeout=30)
    token = httpx.post(f"{urls['auth']}/api/v1/auth/token", json=credentials, timeout=30).json()[
        "accessToken"
    ]
    bearer = {"Authorization": f"Bearer {token}"}
    for pid in products[:3]:  # a cart of three lines to view
        httpx.post(
            f"{urls['cart']}/api/v1/cart/items",
            json={"productId": pid, "quantity": 1},
            headers=bearer,
            timeout=30,
        ).raise_for_status()
    # Many shoppers for the writes (a cart line holds at most 99 units): tokens signed with the
    # platform's JWT ring, as auth issues them; cart and order verify them locally.
    tokens = TokenService(
        KeyRing(platform.jwt_keyring), issuer="checkout-platform", audience="checkout-api"
    )
    shoppers = [tokens.issue(uuid.uuid4().hex[:24], "customer", 3600).token for _ in range(400)]
    rotate = f"""
tokens = {lua_list(shoppers)}
products = {lua_list(products)}
counter = 0
"""
    add_to_cart = (
        rotate
        + """
request = function()
  counter = counter + 1
  local body = string.format('{"productId":"%s","quantity":1}', products[counter % #products + 1])
  wrk.headers["Authorization"] = "Bearer " .. tokens[counter % #tokens + 1]
  return wrk.format("POST", nil, nil, body)
end
"""
    )
    checkout = (
        rotate
        + """
request = function()
  counter = counter + 1
  local body = string.format('{"items":[{"productId":"%s","quantity":1}]}',
                             products[counter % #products + 1])
  wrk.headers["Authorization"] = "Bearer " .. tokens[counter % #tokens + 1]
  return wrk.format("POST", nil, nil, body)
end
"""
    )
    return [
        Endpoint("bare", "bare", "GET", "/"),
        Endpoint("healthz", "cart", "GET", "/healthz"),
        Endpoint("product-read", "product", "GET", f"/api/v1/products/{products[0]}"),
        Endpoint("product-list", "product", "GET", "/api/v1/products?pageSize=20"),
        Endpoint("cart-view", "cart", "GET", "/api/v1/cart", headers=bearer),
        Endpoint("token-verify", "auth", "GET", "/api/v1/auth/verify", headers=bearer),
        Endpoint("add-to-cart", "cart", "POST", "/api/v1/cart/items", request_lua=add_to_cart),
        # The seed route with items: a checkout (reservation, order, commit) without the cart
        # read and clear, so it can repeat; the cart checkout adds one cart call to it.
        Endpoint("checkout", "order", "POST", "/api/order", request_lua=checkout),
        Endpoint("sign-in", "auth", "POST", "/api/v1/auth/token", body=json.dumps(credentials)),
        Endpoint(
            "overload",
            "cart",
            "POST",
            "/api/v1/cart/items",
            request_lua=add_to_cart,
            connections=OVERLOAD_CONNECTIONS,
            timeout_seconds=OVERLOAD_LIMIT_SECONDS,
            count_statuses=True,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", default="", help="comma-separated endpoints (bare always runs)")
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME=SERVICE:PATH",
        help="also GET PATH of SERVICE (auth, product, cart, order) as endpoint NAME",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the services with py-spy; collapsed stacks to DIR, a summary printed",
    )
    parser.add_argument(
        "--no-tracing",
        dest="tracing",
        action="store_false",
        help="leave out add-to-cart with tracing on (Jaeger, a traced cart and product)",
    )
    parser.add_argument(
        "--engine",
        choices=list(ENGINES),
        help="the database engine to start (default: CHECKOUT_DB_ENGINE's, else as local mode)",
    )
    args = parser.parse_args(argv)
    wrk_binary()
    wanted = set(filter(None, args.only.split(",")))
    extra = []
    for spec in args.extra:
        name, _, target = spec.partition("=")
        service, _, path = target.partition(":")
        if not name or service not in SERVICES or not path.startswith("/"):
            parser.error(f"--extra {spec!r}: NAME=SERVICE:PATH, e.g. x=product:/healthz")
        extra.append(Endpoint(name, service, "GET", path))
        if wanted:
            wanted.add(name)
    bare_port = free_port()
    # A shopper signing in many times a second from one address: raise the limits for the run.
    generous = {"SIGNIN_LIMIT_PER_CLIENT": "100000000", "SIGNIN_LIMIT_PER_EMAIL": "100000000"}
    with tempfile.TemporaryDirectory(prefix="bench-api-") as workdir:
        bare = subprocess.Popen(
            [sys.executable, "-m", "bench.bare", str(bare_port)],
            cwd=Path(__file__).resolve().parents[1],
        )
        try:
            with LocalPlatform(
                Path(workdir),
                ephemeral_mongo=True,
                mongo_engine=args.engine,
                service_env={"auth": generous},
            ) as platform:
                bare_url = f"http://127.0.0.1:{bare_port}"
                deadline = time.monotonic() + 30
                while True:
                    try:
                        httpx.get(bare_url, timeout=1)
                        break
                    except httpx.HTTPError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
                bench = Bench(platform, bare_url, args.seconds, args.connections, args.profile)
                results = []
                traced: dict[str, ServiceProcess] = {}
                jaeger = None
                trace_wanted = args.tracing and (not wanted or "add-to-cart" in wanted)
                if trace_wanted:
                    try:
                        jaeger = JaegerServer(Path(workdir) / "jaeger.log").start()
                    except JaegerError as exc:
                        print(f"bench-api: no tracing comparison: {exc}", file=sys.stderr)
                if jaeger is not None:
                    traced = start_traced_pair(platform, jaeger, Path(workdir) / "logs")
                    bench.urls["cart-traced"] = traced["cart"].url
                    bench.service_pids += [p.process.pid for p in traced.values() if p.process]
                    bench.counter_urls += [p.url for p in traced.values()]
                off: list[Result] = []
                on: list[Result] = []
                try:
                    for endpoint in endpoints(platform) + extra:
                        if wanted and endpoint.name not in wanted and endpoint.name != "bare":
                            continue
                        results.append(bench.run(endpoint))
                        print(f"  measured {endpoint.name}", file=sys.stderr, flush=True)
                        if endpoint.name == "add-to-cart" and traced:
                            # Off and on alternate, twice: a drift of the machine's load (other
                            # work shares the two cores) weighs on both sides alike.
                            traced_endpoint = dataclasses.replace(
                                endpoint, name="add-to-cart-traced", service="cart-traced"
                            )
                            off.append(results[-1])
                            on.append(bench.run(traced_endpoint))
                            off.append(bench.run(endpoint))
                            on.append(bench.run(traced_endpoint))
                            results.append(on[-1])
                            print("  measured add-to-cart-traced", file=sys.stderr, flush=True)
                finally:
                    for process in traced.values():
                        process.stop()
                    if jaeger is not None:
                        jaeger.stop()
        finally:
            stop_process(bare, 10)
    ceiling = results[0].rps
    for result in results:
        result.ratio = result.rps / ceiling if ceiling else 0.0
    print(
        f"{'endpoint':18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7} "
        f"{'cpu ms':>7} {'db cpu':>7} {'db cmds':>8} {'calls':>6} {'ratio':>6}"
    )
    for r in results:
        print(
            f"{r.endpoint:18} {r.rps:8.0f} {r.p50_ms:8.1f} {r.p99_ms:8.1f} {r.failed:7d} "
            f"{r.cpu_ms:7.2f} {r.db_cpu_ms:7.2f} {r.db_cmds:8.1f} {r.calls:6.1f} {r.ratio:6.3f}"
        )
    for name, profile in bench.profiles:
        print(profile.line(name))
    for r in results:
        print(r.line())
    if off and on:
        print(tracing_line(off, on))
    failed = sum(r.failed for r in results)
    slow = [r for r in results if r.too_slow()]
    for r in slow:
        print(
            f"bench-api: {r.endpoint} answered after {r.max_ms:.0f} ms (limit {r.limit_ms:.0f})",
            file=sys.stderr,
        )
    if failed:
        print(f"bench-api: {failed} failed requests", file=sys.stderr)
    return 1 if failed or slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
