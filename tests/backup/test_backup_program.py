"""``python -m checkout_backup``, the program the backup and restore Jobs run, against real servers
(the tests' engine and FerretDB, the cluster's), as a process the way the Jobs start it: a
round trip through one archive keeps every document byte for byte and every index; retention
keeps the newest; a full target, a damaged archive and a database holding data are refused in
words and lose nothing."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import Int64, ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, DESCENDING, MongoClient

from services.local.mongo_server import MongoServer
from tests.infra.engines import started

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("auth", "product", "cart", "order")


@pytest.fixture(scope="module", params=["tests' engine", "ferretdb-sqlite"])
def server(request: pytest.FixtureRequest, mongo_server: MongoServer) -> Iterator[MongoServer]:
    if request.param != "ferretdb-sqlite":
        yield mongo_server
        return
    with started(request.param) as server:
        yield server


@pytest.fixture
def client(server: MongoServer) -> Iterator[MongoClient[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(server.uri)
    try:
        yield client
    finally:
        client.close()


def run(
    server: MongoServer, names: dict[str, str], *args: str, report: Path
) -> tuple[int, dict[str, Any], str]:
    """The program as a Job runs it; ``names`` maps each service to its database on ``server``.
    Returns the exit status, the termination report and stderr."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": f"{ROOT / 'operator'}"}
    for service, database in names.items():
        env[f"CHECKOUT_BACKUP_{service.upper()}_URI"] = server.uri
        env[f"CHECKOUT_BACKUP_{service.upper()}_DATABASE"] = database
    databases = [arg for service in names for arg in ("--database", service)]
    done = subprocess.run(
        [sys.executable, "-m", "checkout_backup", *databases, "--report", str(report), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, json.loads(report.read_text()), done.stderr


def fill(client: MongoClient[dict[str, Any]], names: dict[str, str]) -> None:
    """Documents of many BSON types, several collections and indexes per database."""
    now = datetime.datetime(2026, 12, 7, 1, 2, 3, 456000, tzinfo=datetime.UTC)
    for i, (service, database) in enumerate(names.items()):
        db = client[database]
        db.things.insert_many(
            [
                {
                    "_id": ObjectId(),
                    "n": n,
                    "big": Int64(2**40 + n),
                    "ratio": n / 7,
                    "name": f"{service}-é-{n}",
                    "when": now + datetime.timedelta(seconds=n),
                    "nested": {"list": [1, "two", {"three": 3.0}], "flag": n % 2 == 0},
                    "none": None,
                    "bytes": bson.Binary(bytes([n % 256]) * 5),
                }
                for n in range(250 + 50 * i)
            ]
        )
        db.things.create_index([("name", ASCENDING)], unique=True, name="name_unique")
        db.things.create_index([("n", ASCENDING), ("when", DESCENDING)], name="n_when")
        db.keyed.insert_many([{"_id": f"key-{k}", "v": k} for k in range(30)])
    if "product" in names:
        # Integer _ids and numbers of each width (FerretDB has no Decimal128, nor do the services).
        client[names["product"]].prices.insert_many(
            [{"_id": k, "cents": k * 100, "big": Int64(k) * 10**12} for k in (3, 1, 2)]
        )


def state(
    client: MongoClient[dict[str, Any]], database: str
) -> dict[str, tuple[int, str, list[Any]]]:
    """Per collection: count, sha256 of the documents' BSON in _id order, and the indexes."""
    db = client[database]
    out = {}
    for name in sorted(db.list_collection_names()):
        raw = db.get_collection(name).with_options(
            codec_options=bson.CodecOptions(document_class=RawBSONDocument)
        )
        digest, count = hashlib.sha256(), 0
        for doc in raw.find({}, sort=[("_id", 1)]):
            digest.update(doc.raw)
            count += 1
        indexes = sorted(
            (ix["name"], list(ix["key"].items()), bool(ix.get("unique")))
            for ix in db[name].list_indexes()
        )
        out[name] = (count, digest.hexdigest(), indexes)
    return out


def names_for(prefix: str) -> dict[str, str]:
    return {service: f"{prefix}{service}" for service in SERVICES}


def backed_up(
    server: MongoServer, names: dict[str, str], tmp_path: Path, retention: int
) -> tuple[Path, dict[str, Any]]:
    """One successful backup of ``names`` into a fresh target: (the target, the report)."""
    target = tmp_path / "backups"
    target.mkdir()
    code, report, err = run(
        server, names, "backup", "--checkout", "shop", "--namespace", "ns",
        "--target", str(target), "--retention", str(retention), report=tmp_path / "r1",
    )  # fmt: skip
    assert code == 0, err
    return target, report


def test_a_round_trip_keeps_every_document_and_index(
    server: MongoServer, client: MongoClient[dict[str, Any]], db_prefix: str, tmp_path: Path
) -> None:
    source, restored = names_for(db_prefix + "a"), names_for(db_prefix + "b")
    fill(client, source)
    before = {s: state(client, d) for s, d in source.items()}
    target, report = backed_up(server, source, tmp_path, retention=3)
    archive = target / report["archive"]
    assert archive.is_file() and report["bytes"] == archive.stat().st_size
    assert report["documents"] == sum(c for s in before.values() for c, _, _ in s.values())
    # The checksum file is sha256sum's format.
    checked = subprocess.run(
        ["sha256sum", "-c", archive.name + ".sha256"], cwd=target, capture_output=True, text=True
    )
    assert checked.returncode == 0 and ": OK" in checked.stdout
    with tarfile.open(archive) as tar:
        members = set(tar.getnames())
        databases = json.load(tar.extractfile("manifest.json"))["databases"]  # type: ignore[arg-type]
    assert "manifest.json" in members and "order/things.bson" in members
    assert "order/things.metadata.json" in members

    code, loaded, err = run(
        server, restored, "restore", "--source", str(target), report=tmp_path / "r2"
    )
    assert code == 0, err
    assert loaded["archive"] == report["archive"] and loaded["documents"] == report["documents"]
    # The read-back's digest is the manifest's "databases", as compact JSON with sorted keys.
    compact = json.dumps(databases, sort_keys=True, separators=(",", ":"))
    assert loaded["verifiedSha256"] == hashlib.sha256(compact.encode()).hexdigest()
    after = {s: state(client, d) for s, d in restored.items()}
    assert after == before


def test_retention_keeps_the_newest_and_a_full_target_loses_nothing(
    server: MongoServer, client: MongoClient[dict[str, Any]], db_prefix: str, tmp_path: Path
) -> None:
    names = names_for(db_prefix)
    fill(client, names)
    target = tmp_path / "backups"
    target.mkdir()
    backup = ("backup", "--checkout", "shop", "--namespace", "ns", "--target", str(target))
    made = []
    for i in range(3):
        code, report, err = run(
            server, names, *backup, "--retention", "2", report=tmp_path / f"r{i}"
        )
        assert code == 0, err
        made.append(report["archive"])
    assert report["deleted"] == [made[0]]
    assert report["kept"] == 2
    left = sorted(p.name for p in target.iterdir())
    assert left == sorted([*made[1:], *(m + ".sha256" for m in made[1:])])

    # A target whose claim says 1Ki: the backup fails, the archives there stay, no partial.
    code, report, err = run(
        server, names, *backup, "--retention", "2", "--capacity", "1Ki", report=tmp_path / "rf"
    )
    assert code == 1
    assert report["ok"] is False and "backup target full" in report["error"]
    assert "backup target full" in err
    assert sorted(p.name for p in target.iterdir()) == left

    # Bad settings name the option.
    code, report, _ = run(server, names, *backup, "--retention", "0", report=tmp_path / "rb")
    assert code == 1 and report["error"].startswith("--retention: 0")
    code, report, _ = run(
        server, names, *backup, "--retention", "2", "--capacity", "lots", report=tmp_path / "rc"
    )
    assert code == 1 and report["error"].startswith("--capacity: 'lots'")


def test_a_restore_never_writes_over_data_nor_loads_a_damaged_archive(
    server: MongoServer, client: MongoClient[dict[str, Any]], db_prefix: str, tmp_path: Path
) -> None:
    source, other = names_for(db_prefix + "a"), names_for(db_prefix + "b")
    fill(client, source)
    target, report = backed_up(server, source, tmp_path, retention=2)

    # Into the live databases themselves: refused before anything is written.
    before = {s: state(client, d) for s, d in source.items()}
    code, refused, _ = run(
        server, source, "restore", "--source", str(target), report=tmp_path / "r2"
    )
    assert code == 1
    assert "already holds documents" in refused["error"] and "never writes over" in refused["error"]
    assert {s: state(client, d) for s, d in source.items()} == before

    # One document in one database of a fresh set is enough to refuse it all.
    client[other["cart"]].carts.insert_one({"_id": "x"})
    code, refused, _ = run(
        server, other, "restore", "--source", str(target), report=tmp_path / "r3"
    )
    assert code == 1 and "database cart already holds documents (in carts)" in refused["error"]
    assert client[other["order"]].list_collection_names() == []
    client[other["cart"]].carts.delete_many({})

    # A damaged archive: its checksum says so, nothing is loaded.
    archive = target / report["archive"]
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    code, refused, _ = run(
        server, other, "restore", "--source", str(target), "--archive", archive.name,
        report=tmp_path / "r4",
    )  # fmt: skip
    assert code == 1 and "does not match" in refused["error"] and "damaged" in refused["error"]
    assert client[other["order"]].list_collection_names() == []

    code, refused, _ = run(
        server, other, "restore", "--source", str(target), "--archive", "nope.tar.gz",
        report=tmp_path / "r5",
    )  # fmt: skip
    assert code == 1 and refused["error"] == f"no archive 'nope.tar.gz' in {target}"
