"""One backup: every database into one archive, checked, put in place, then the retention."""

from __future__ import annotations

import datetime
import errno
import io
import os
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bson import json_util
from pymongo.errors import PyMongoError

from .archive import (
    MANIFEST,
    PARTIAL_PREFIX,
    BackupError,
    Summary,
    apply_retention,
    archive_name,
    archives,
    fsync,
    manifest,
    sha256_of,
    total_documents,
    used_bytes,
    write_checksum,
)
from .databases import Source, collections, summarise

SPOOL_BYTES = 16 << 20
"""A collection's documents are held in memory up to this, then in a temporary file."""


def _add(tar: tarfile.TarFile, name: str, stream: io.BufferedIOBase | Any, size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(time.time()), 0o644
    tar.addfile(info, stream)


def _full(target: Path, capacity: int, used: int) -> BackupError:
    return BackupError(
        f"backup target full: {target} holds {used} bytes with this backup, "
        f"more than its {capacity} bytes; older archives are kept (raise the claim's size or "
        "lower the retention)"
    )


def dump(
    sources: Sequence[Source],
    target: Path,
    *,
    checkout: str,
    namespace: str,
    retention: int,
    capacity: int | None = None,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Write ``<checkout>-<time>.tar.gz`` and its checksum into ``target``, then delete the
    oldest archives beyond ``retention``. ``capacity``: the target's size in bytes, when the
    storage does not enforce it itself; going beyond it fails the backup like a full disk.
    Returns the report (`report`)."""
    if not target.is_dir():
        raise BackupError(f"backup target {target} is not a mounted folder")
    started = datetime.datetime.now(datetime.UTC)
    name = archive_name(checkout, started)
    partial = target / f"{PARTIAL_PREFIX}{name}"
    summary: Summary = {}
    # What the target held before: only the archive being written grows it from here on.
    before = used_bytes(target) if capacity is not None else 0

    def check_room() -> None:
        if capacity is not None and before + partial.stat().st_size > capacity:
            raise _full(target, capacity, before + partial.stat().st_size)

    try:
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            for source in sources:
                summary[source.name] = {}
                with source.connect(timeout) as client:
                    db = source.db(client)
                    for info in collections(db):
                        collection = db[str(info["name"])]
                        with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as spool:
                            found = summarise(collection, spool)
                            size = spool.tell()
                            spool.seek(0)
                            _add(tar, f"{source.name}/{collection.name}.bson", spool, size)
                        metadata = {
                            "collectionName": collection.name,
                            "type": "collection",
                            "options": info.get("options") or {},
                            "indexes": list(collection.list_indexes()),
                        }
                        raw = json_util.dumps(
                            metadata, json_options=json_util.CANONICAL_JSON_OPTIONS
                        ).encode()
                        _add(
                            tar,
                            f"{source.name}/{collection.name}.metadata.json",
                            io.BytesIO(raw),
                            len(raw),
                        )
                        summary[source.name][collection.name] = found
                        check_room()
            raw = json_util.dumps(
                manifest(checkout, namespace, started.isoformat(), summary), indent=2
            ).encode()
            _add(tar, MANIFEST, io.BytesIO(raw), len(raw))
        fsync(partial)
        check_room()
        digest = sha256_of(partial)
        archive = target / name
        os.replace(partial, archive)
        fsync(write_checksum(archive, digest))
        fsync(target)
    except PyMongoError as exc:
        raise BackupError(f"reading the databases: {exc}") from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BackupError(f"backup target full: {target}: {exc.strerror}") from None
        raise BackupError(f"writing the archive into {target}: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    deleted = apply_retention(target, checkout, retention)
    finished = datetime.datetime.now(datetime.UTC)
    return {
        "ok": True,
        "action": "backup",
        "archive": name,
        "bytes": archive.stat().st_size,
        "sha256": digest,
        "documents": total_documents(summary),
        "collections": sum(len(c) for c in summary.values()),
        "startedAt": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "completedAt": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": round((finished - started).total_seconds(), 3),
        "deleted": deleted,
        "kept": len(archives(target, checkout)),
    }
