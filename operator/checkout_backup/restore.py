"""A restore: an archive loaded into empty databases, then every collection checked equal."""

from __future__ import annotations

import datetime
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import bson
from bson import json_util
from pymongo import IndexModel
from pymongo.errors import PyMongoError

from .archive import (
    MANIFEST,
    BackupError,
    Summary,
    archives,
    check_checksum,
    read_manifest,
    summary_sha256,
    total_documents,
)
from .databases import BATCH, RAW, Source, holding_documents, summarise

_INDEX_FIELDS_NOT_OPTIONS = ("v", "key", "ns")


def find_archive(folder: Path, archive: str) -> Path:
    """``archive`` in ``folder``, or with "latest" the newest complete archive there."""
    if archive == "latest":
        found = archives(folder, None)
        if not found:
            raise BackupError(f"no backup archive in {folder}")
        return found[-1]
    path = folder / archive
    if "/" in archive or not path.is_file():
        raise BackupError(f"no archive {archive!r} in {folder}")
    return path


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    try:
        stream = tar.extractfile(name)
    except KeyError:
        stream = None
    if stream is None:
        raise BackupError(f"the archive has no {name}")
    return stream


def restore(sources: Sequence[Source], archive: Path, *, timeout: float = 10.0) -> dict[str, Any]:
    """Load ``archive`` into the databases of ``sources``, which must hold no document; then
    compare every collection's count and hash with the manifest's. Returns the report."""
    started = datetime.datetime.now(datetime.UTC)
    digest = check_checksum(archive)
    by_name: Mapping[str, Source] = {source.name: source for source in sources}
    with tarfile.open(archive, "r:gz") as tar:
        document, summary = read_manifest(_member(tar, MANIFEST).read())
        unknown = sorted(set(summary) - set(by_name))
        if unknown:
            raise BackupError(
                f"the archive holds the databases {', '.join(unknown)}, which this Checkout "
                "has none of"
            )
        clients = {db: by_name[db].connect(timeout) for db in summary}
        dbs = {name: by_name[name].db(client) for name, client in clients.items()}
        try:
            for db_name, db in dbs.items():
                busy = holding_documents(db)
                if busy:
                    raise BackupError(
                        f"database {db_name} already holds documents (in {', '.join(busy)}): "
                        "a restore only fills empty databases, never writes over data"
                    )
            for db_name, names in summary.items():
                db = dbs[db_name]
                for name in sorted(names):
                    meta = json_util.loads(_member(tar, f"{db_name}/{name}.metadata.json").read())
                    if name not in db.list_collection_names():
                        db.create_collection(name, **dict(meta.get("options") or {}))
                    collection = db.get_collection(name, codec_options=RAW)
                    stream = _member(tar, f"{db_name}/{name}.bson")
                    batch = []
                    for raw in bson.decode_file_iter(stream, codec_options=RAW):
                        batch.append(raw)
                        if len(batch) == BATCH:
                            collection.insert_many(batch, ordered=True)
                            batch = []
                    if batch:
                        collection.insert_many(batch, ordered=True)
                    indexes = [
                        IndexModel(
                            list(spec["key"].items()),
                            **{k: v for k, v in spec.items() if k not in _INDEX_FIELDS_NOT_OPTIONS},
                        )
                        for spec in meta.get("indexes") or []
                        if spec.get("name") != "_id_"
                    ]
                    if indexes:
                        db[name].create_indexes(indexes)
            # Read back: every collection's count and hash, as the databases hold them now.
            read_back: Summary = {
                db_name: {name: summarise(dbs[db_name][name]) for name in names}
                for db_name, names in summary.items()
            }
            differences = [
                f"{db_name}.{name}: {found.documents} documents {found.sha256[:12]} against "
                f"{wanted.documents} {wanted.sha256[:12]}"
                for db_name, names in summary.items()
                for name, wanted in sorted(names.items())
                if (found := read_back[db_name][name]) != wanted
            ]
        except PyMongoError as exc:
            raise BackupError(f"restoring {archive.name}: {exc}") from None
        finally:
            for client in clients.values():
                client.close()
    if differences:
        raise BackupError("restored, but not equal to the archive: " + "; ".join(differences))
    finished = datetime.datetime.now(datetime.UTC)
    return {
        "ok": True,
        "action": "restore",
        "archive": archive.name,
        "sha256": digest,
        "from": f"{document.get('namespace')}/{document.get('checkout')}",
        "documents": total_documents(summary),
        "collections": sum(len(c) for c in summary.values()),
        # Of the read-back's counts and hashes (archive.summary_sha256): equal to the manifest's.
        "verifiedSha256": summary_sha256(read_back),
        "startedAt": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "completedAt": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": round((finished - started).total_seconds(), 3),
    }
