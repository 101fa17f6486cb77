"""``python -m services.local`` (``make dev``): the platform as local processes on fixed ports.

State (keyrings, the admin's credentials, the database files, logs) lives in ``.local/`` at the
repository root, or in ``CHECKOUT_LOCAL_DIR``; it is kept between runs, so accounts, carts and
orders survive a restart. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

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
    args = parser.parse_args(argv)
    ports = {name: args.base_port + DEV_PORTS[name] - 8000 for name in PROCESSES}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.monotonic()
    print(f"starting the platform in {args.dir.resolve()} ...", flush=True)
    try:
        if not os.environ.get("MONGO_URI"):
            engine_from_env()  # a bad CHECKOUT_DB_ENGINE stops here, naming the allowed values
        platform = LocalPlatform(args.dir, ports=ports, services=PROCESSES).start()
    except (PlatformError, EngineError) as exc:
        print(f"make dev: {exc}", file=sys.stderr)
        return 1
    try:
        assert platform.mongo is not None
        print(f"\nready in {time.monotonic() - started:.1f}s\n")
        print(f"  shop     {platform.urls[STOREFRONT]}   <- open this in a browser\n")
        for name in SERVICES:
            print(f"  {name:<8} {platform.urls[name]}   (OpenAPI: {platform.urls[name]}/schema)")
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
        print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
