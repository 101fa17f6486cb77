"""What a test needs to start a database engine of its own (services/local/mongo_server.py's
``ENGINES``): an engine this machine cannot run (no PostgreSQL, no Java or Maven, no Go) skips
the test, saying why; under ``CI=true``, where .ci/run installs them, it fails instead."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from services.local.mongo_server import MongoServer, cache_dir, postgres_bin_dir, start_engine


def missing(engine: str) -> str:
    """Why this machine cannot run ``engine`` ('' when it can)."""
    if engine.startswith("ferretdb-"):
        built = (cache_dir() / "ferretdb").glob("*/ferretdb")
        if shutil.which("go") is None and not any(built):
            return "no Go to build FerretDB with"
    if engine == "ferretdb-postgres" and postgres_bin_dir() is None:
        return "PostgreSQL is not installed (Debian: apt-get install postgresql)"
    if engine.startswith("java-"):
        # Run on a JRE; built once per machine with Maven and a JDK.
        absent = [tool for tool in ("java", "mvn", "javac") if shutil.which(tool) is None]
        if absent:
            return f"{', '.join(absent)} not installed (Debian: maven default-jdk-headless)"
    return ""


def require(engine: str) -> None:
    """Skip the test (fail it under ``CI=true``) when this machine cannot run ``engine``."""
    reason = missing(engine)
    if not reason:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{engine} cannot run under CI=true (.ci/run installs it): {reason}")
    pytest.skip(f"{engine}: {reason}")


@contextmanager
def started(engine: str) -> Iterator[MongoServer]:
    """``engine`` started on a port of its own for the block (`require`d first), then stopped."""
    require(engine)
    server = start_engine(engine)
    try:
        yield server
    finally:
        server.stop()
