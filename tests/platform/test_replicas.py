"""Two replicas of a service on one database, as two processes (local mode): the last units of a
product reserved through both at once are sold exactly once each. On FerretDB, whose conditional
updates are read-then-write, this holds because the replicas take turns through leases in the
database (services/kit/locks.py); the per-process lock alone let a second replica oversell."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from pymongo import MongoClient

from services.local.mongo_server import MongoServer
from services.local.platform import LocalPlatform

UNITS = 5
REQUESTS = 24


def _internal_key(platform: LocalPlatform) -> str:
    ring = json.loads(platform.internal_keyring.read_text())
    return str(next(k["secret"] for k in ring["keys"] if k["kid"] == ring["active"]))


def test_two_replicas_sell_the_last_units_exactly_once(
    mongo_server: MongoServer, tmp_path: Path
) -> None:
    prefix = "r" + uuid.uuid4().hex[:8] + "_"
    with (
        LocalPlatform(tmp_path / "a", mongo=mongo_server, db_prefix=prefix, services=("product",))
        as first,
        LocalPlatform(tmp_path / "b", mongo=mongo_server, db_prefix=prefix, services=("product",))
        as second,
    ):  # fmt: skip
        with MongoClient(mongo_server.uri) as client:
            products = client[f"{prefix}product"].products
            product = products.find_one({"sku": "KB-001"})
            assert product is not None
            products.update_one({"_id": product["_id"]}, {"$set": {"stock": UNITS}})
        replicas = [(first.urls["product"], _internal_key(first)),
                    (second.urls["product"], _internal_key(second))]  # fmt: skip

        def reserve(n: int) -> int:
            url, key = replicas[n % 2]
            body = {
                "reservationId": f"r-{n}",
                "items": [{"productId": str(product["_id"]), "quantity": 1}],
            }
            answer = httpx.post(
                f"{url}/internal/v1/reservations",
                json=body,
                headers={"X-Internal-Api-Key": key},
                timeout=30,
            )
            return answer.status_code

        with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
            codes = list(pool.map(reserve, range(REQUESTS)))
        assert sorted(codes) == [200] * UNITS + [409] * (REQUESTS - UNITS), codes
        with MongoClient(mongo_server.uri) as client:
            left = client[f"{prefix}product"].products.find_one({"_id": product["_id"]})
            assert left is not None and left["stock"] == 0
            assert len(left.get("reservations", [])) == UNITS
            if "ferretdbVersion" in client.admin.command("buildInfo"):
                # Every lease was given back.
                assert client[f"{prefix}product"].locks.count_documents({}) == 0
