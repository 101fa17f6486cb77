"""The service databases a backup or restore reads or writes, and what a collection holds.

Each database is named after its service (``auth``, ``product``, ``cart``, ``order``: its name in
the archive) and reached with its own root credential, given in the environment as the Jobs'
pods get them from the Checkout's Secrets: ``CHECKOUT_BACKUP_<NAME>_URI``, ``..._USERNAME`` and
``..._PASSWORD``; ``..._DATABASE`` when the database on the server is named otherwise.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database

from .archive import BackupError, CollectionSummary

RAW = CodecOptions(document_class=RawBSONDocument)
BATCH = 1000


@dataclass(frozen=True)
class Source:
    name: str
    """The database's name in the archive: its service's."""
    uri: str
    username: str | None = None
    password: str | None = None
    database: str = ""
    """Its name on the server (empty: ``name``)."""

    @classmethod
    def from_env(cls, name: str, env: Mapping[str, str] = os.environ) -> Source:
        prefix = f"CHECKOUT_BACKUP_{name.upper()}_"
        uri = env.get(prefix + "URI")
        if not uri:
            raise BackupError(f"{prefix}URI is not set: where is the {name} database?")
        return cls(
            name,
            uri,
            env.get(prefix + "USERNAME"),
            env.get(prefix + "PASSWORD"),
            env.get(prefix + "DATABASE", ""),
        )

    def db(self, client: MongoClient[dict[str, Any]]) -> Database[dict[str, Any]]:
        return client[self.database or self.name]

    def connect(self, timeout: float) -> MongoClient[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "serverSelectionTimeoutMS": int(timeout * 1000),
            "connectTimeoutMS": int(timeout * 1000),
            "appname": "checkout-backup",
            "tz_aware": True,
        }
        if self.username:
            kwargs["username"] = self.username
            kwargs["password"] = self.password or ""
        return MongoClient(self.uri, **kwargs)


def collections(db: Database[dict[str, Any]]) -> list[Mapping[str, Any]]:
    """The database's collections (``listCollections`` entries), views and ``system.*`` left
    out, by name."""
    found = [
        info
        for info in db.list_collections()
        if info.get("type", "collection") == "collection"
        and not str(info["name"]).startswith("system.")
    ]
    return sorted(found, key=lambda info: str(info["name"]))


def documents(collection: Collection[dict[str, Any]]) -> Iterator[bytes]:
    """Every document's BSON as the server returns it, in ``_id`` order."""
    raw = collection.with_options(codec_options=RAW)
    for document in raw.find({}, sort=[("_id", 1)], batch_size=BATCH):
        yield bytes(document.raw)


def summarise(
    collection: Collection[dict[str, Any]], sink: IO[bytes] | None = None
) -> CollectionSummary:
    """The collection's count and content hash; its documents' BSON also go to ``sink``."""
    digest, count = hashlib.sha256(), 0
    for raw in documents(collection):
        digest.update(raw)
        count += 1
        if sink is not None:
            sink.write(raw)
    return CollectionSummary(count, digest.hexdigest())


def holding_documents(db: Database[dict[str, Any]]) -> list[str]:
    """The collections of ``db`` that hold at least one document."""
    return [
        str(info["name"])
        for info in collections(db)
        if db[str(info["name"])].find_one({}, projection={"_id": 1}) is not None
    ]
