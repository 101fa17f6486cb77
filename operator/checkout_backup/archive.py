"""The backup archive: names, checksums, the manifest, and the retention of a target folder.

A target folder holds, per backup, ``<checkout>-<YYYYmmddTHHMMSS.mmm>Z.tar.gz`` and its checksum
file ``<archive>.sha256`` (``sha256sum`` format, so ``sha256sum -c`` checks it by hand). An
archive is written as ``.partial-<name>`` and renamed into place once complete and checked, so a
run that dies midway leaves no archive that looks whole; retention and ``latest`` see only
complete ones.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "checkout-backup/v1"
MANIFEST = "manifest.json"
SUFFIX = ".tar.gz"
CHECKSUM_SUFFIX = ".sha256"
PARTIAL_PREFIX = ".partial-"
_STAMP = "%Y%m%dT%H%M%S"
_NAME = re.compile(
    r"^(?P<checkout>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-(?P<stamp>\d{8}T\d{6}\.\d{3}Z)\.tar\.gz$"
)
_CHUNK = 1 << 20


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why, in words."""


def archive_name(checkout: str, when: datetime.datetime) -> str:
    """``<checkout>-<YYYYmmddTHHMMSS.mmm>Z.tar.gz``: milliseconds, so two backups asked for in
    the same second (a schedule and a CheckoutBackup) do not share a name."""
    utc = when.astimezone(datetime.UTC)
    return f"{checkout}-{utc.strftime(_STAMP)}.{utc.microsecond // 1000:03d}Z{SUFFIX}"


def archives(folder: Path, checkout: str | None) -> list[Path]:
    """The complete archives of ``checkout`` (None: of any Checkout) in ``folder``, oldest first
    (by the time in their names, which is when the backup started)."""
    found = []
    for path in folder.iterdir() if folder.is_dir() else ():
        match = _NAME.match(path.name)
        if match and checkout in (None, match["checkout"]) and path.is_file():
            found.append((match["stamp"], path))
    return [path for _, path in sorted(found)]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksum(archive: Path, digest: str) -> Path:
    path = archive.with_name(archive.name + CHECKSUM_SUFFIX)
    path.write_text(f"{digest}  {archive.name}\n")
    return path


def check_checksum(archive: Path) -> str:
    """The archive's sha256, once it matches its checksum file; BackupError otherwise."""
    path = archive.with_name(archive.name + CHECKSUM_SUFFIX)
    try:
        expected = path.read_text().split()[0]
    except (OSError, IndexError) as exc:
        raise BackupError(f"{archive.name}: no checksum file {path.name} ({exc})") from None
    actual = sha256_of(archive)
    if actual != expected:
        raise BackupError(
            f"{archive.name}: sha256 {actual} does not match {path.name} ({expected}); "
            "the archive is damaged"
        )
    return actual


def apply_retention(folder: Path, checkout: str, keep: int) -> list[str]:
    """Delete the oldest complete archives of ``checkout`` beyond ``keep`` (and their checksum
    files), and partial ones left by runs that died; returns the names deleted."""
    deleted = []
    complete = archives(folder, checkout)
    for path in complete[: max(0, len(complete) - keep)]:
        path.unlink(missing_ok=True)
        path.with_name(path.name + CHECKSUM_SUFFIX).unlink(missing_ok=True)
        deleted.append(path.name)
    for path in folder.glob(f"{PARTIAL_PREFIX}{checkout}-*"):
        path.unlink(missing_ok=True)
    return deleted


def used_bytes(folder: Path) -> int:
    """What the files in ``folder`` take (the target's own contents, whatever else shares its
    file system)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class CollectionSummary:
    documents: int
    sha256: str
    """Of the documents' BSON bytes, concatenated in ``_id`` order."""


Summary = dict[str, dict[str, CollectionSummary]]
"""By database, then collection."""


def summary_document(databases: Summary) -> dict[str, Any]:
    """``{database: {collection: {"documents": n, "sha256": h}}}``: the manifest's "databases"."""
    return {
        database: {
            name: {"documents": c.documents, "sha256": c.sha256}
            for name, c in sorted(collections.items())
        }
        for database, collections in sorted(databases.items())
    }


def summary_sha256(databases: Summary) -> str:
    """The sha256 of `summary_document` as compact JSON with sorted keys: one value that a
    manifest's "databases" and a restore's read-back must share."""
    text = json.dumps(summary_document(databases), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def manifest(checkout: str, namespace: str, started: str, databases: Summary) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "checkout": checkout,
        "namespace": namespace,
        "startedAt": started,
        "databases": summary_document(databases),
    }


def read_manifest(raw: bytes) -> tuple[dict[str, Any], Summary]:
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise BackupError(f"{MANIFEST} is not JSON: {exc}") from None
    if not isinstance(document, Mapping) or document.get("format") != FORMAT:
        raise BackupError(f"{MANIFEST}: not a {FORMAT} archive")
    summary: Summary = {}
    for database, collections in (document.get("databases") or {}).items():
        summary[database] = {
            name: CollectionSummary(int(c["documents"]), str(c["sha256"]))
            for name, c in collections.items()
        }
    return dict(document), summary


def total_documents(summary: Summary) -> int:
    return sum(c.documents for collections in summary.values() for c in collections.values())
