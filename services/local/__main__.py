"""``python -m services.local`` (``make dev``): the platform as local processes on fixed ports.

State (keyrings, the admin's credentials, the database files, logs) lives in ``.local/`` at the
repository root, or in ``CHECKOUT_LOCAL_DIR``; it is kept between runs, so accounts, carts and
orders survive a restart. Ctrl-C stops everything.

``TRACING=1`` (or ``--tracing``) also starts Jaeger (services/local/jaeger.py; built once from its
Go module) on 127.0.0.1 and sends every process's traces to it; its UI is printed with the rest.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

from services.local.jaeger import DEV_PORTS as JAEGER_PORTS
from services.local.jaeger import JaegerError, JaegerServer
from services.local.mongo_server import EngineError, engine_from_env
from services.local.platform import (
    DEV_PORTS,
    PROCESSES,
    SERVICES,
    STOREFRONT,
    LocalPlatform,
    PlatformError,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.local", description=__doc__)
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("CHECKOUT_LOCAL_DIR", ".local")),
        help="folder for keyrings, admin credentials, database files and logs (default .local)",
    )
    parser.add_argument(
        "--base-port",
        type=int,
        default=8000,
        help="the storefront's port; auth, product, cart and order take the next four (8000)",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        default=os.environ.get("TRACING", "") not in ("", "0", "false", "no"),
        help="start Jaeger too and trace every request into it (also: TRACING=1)",
    )
    args = parser.parse_args(argv)
    ports = {name: args.base_port + DEV_PORTS[name] - 8000 for name in PROCESSES}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.monotonic()
    print(f"starting the platform in {args.dir.resolve()} ...", flush=True)
    jaeger: JaegerServer | None = None
    try:
        if not os.environ.get("MONGO_URI"):
            engine_from_env()  # a bad CHECKOUT_DB_ENGINE stops here, naming the allowed values
        if args.tracing:
            print("starting Jaeger (the first run builds it from its Go module: minutes) ...")
            jaeger = JaegerServer(args.dir / "logs" / "jaeger.log", ports=JAEGER_PORTS).start()
        platform = LocalPlatform(
            args.dir,
            ports=ports,
            services=PROCESSES,
            otlp_endpoint=jaeger.otlp_endpoint if jaeger else None,
        ).start()
    except (PlatformError, EngineError, JaegerError) as exc:
        if jaeger is not None:
            jaeger.stop()
        print(f"make dev: {exc}", file=sys.stderr)
        return 1
    try:
        assert platform.mongo is not None
        print(f"\nready in {time.monotonic() - started:.1f}s\n")
        print(f"  shop     {platform.urls[STOREFRONT]}   <- open this in a browser\n")
        for name in SERVICES:
            print(f"  {name:<8} {platform.urls[name]}   (OpenAPI: {platform.urls[name]}/schema)")
        if jaeger is not None:
            # Jaeger's Go module has no built UI (its page is a placeholder); the API is whole.
            print(f"  traces   {jaeger.query_url}/api/traces?service=order   (Jaeger's query API)")
            print(f"           OTLP in at {jaeger.otlp_endpoint}; see docs/tracing.md")
        print(f"  mongodb  {platform.mongo.uri}  ({platform.mongo.engine or platform.mongo.kind})")
        earlier = platform.workdir / "mongo" / "sqlite"
        if platform.mongo.engine != "ferretdb-sqlite" and any(earlier.glob("*.sqlite")):
            # FerretDB on SQLite was local mode's default engine before mongo-java-server.
            print(f"  (FerretDB's data of earlier runs is in {earlier}: an engine's data stays")
            print("   its own; CHECKOUT_DB_ENGINE=ferretdb-sqlite make dev serves it)")
        print(f"\n  admin credentials: {platform.admin_file}")
        print(f"  keyrings:          {platform.keys_dir}")
        print(f"  logs:              {platform.logs_dir}")
        print("\nCtrl-C stops everything.", flush=True)
        while not stop.is_set():
            for service in platform.services.values():
                if not service.running:
                    print(f"\n{service.name} stopped unexpectedly:\n{service.log_tail()}")
                    return 1
            stop.wait(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping ...", flush=True)
        platform.stop()
        if jaeger is not None:
            jaeger.stop()
        print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
