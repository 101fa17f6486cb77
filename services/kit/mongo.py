"""MongoDB access through PyMongo's async client, created once per app."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from bson import ObjectId
from bson.errors import InvalidId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.monitoring import CommandListener

from services.kit.counters import CommandCounter
from services.kit.settings import ServiceSettings

log = logging.getLogger(__name__)

Document = dict[str, Any]
Database = AsyncDatabase[Document]
IndexSetup = Callable[[Database], Awaitable[None]]


def create_client(
    settings: ServiceSettings, *, listeners: Sequence[CommandListener] = ()
) -> AsyncMongoClient[Document]:
    """The service's client; ``listeners`` are more command listeners (tracing's)."""
    timeout_ms = int(settings.mongo_timeout_seconds * 1000)
    kwargs: dict[str, Any] = {
        "serverSelectionTimeoutMS": timeout_ms,
        "connectTimeoutMS": timeout_ms,
        "tz_aware": True,
        "appname": settings.service_name,
        "event_listeners": [CommandCounter(), *listeners],
    }
    if settings.mongo_username:
        kwargs["username"] = settings.mongo_username
        kwargs["password"] = settings.mongo_password or ""
    return AsyncMongoClient(settings.mongo_uri, **kwargs)


async def ping(db: Database, within: float = 2.0) -> bool:
    try:
        await asyncio.wait_for(db.command("ping"), within)
    except Exception as exc:  # any failure means "not ready"; the reason goes to the log
        log.warning("database ping failed", extra={"error": repr(exc)})
        return False
    return True


async def ensure_indexes_until_done(
    db: Database, setup: IndexSetup, *, max_delay: float = 10.0
) -> None:
    """Create indexes at start-up, retrying while the database is not reachable yet."""
    delay = 0.2
    while True:
        try:
            await setup(db)
        except Exception as exc:
            log.warning("index setup failed, retrying", extra={"error": repr(exc), "in": delay})
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter only
            delay = min(max_delay, delay * 2)
            continue
        log.info("indexes ready")
        return


T = TypeVar("T")


def stored_now() -> datetime:
    """The current UTC time at BSON's precision (milliseconds): a document answered from memory
    then equals the one read back."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def from_document(doc: Document, kind: type[T], **defaults: Any) -> T:
    """A stored document as ``kind``, a Struct whose (camelCase) field names are the stored
    ones, with ``_id`` as its ``id``; ``defaults`` fill fields older documents may lack. Fields
    the Struct does not have (a password hash, bookkeeping) are left out."""
    return msgspec.convert({**defaults, **doc, "id": str(doc["_id"])}, kind)


def parse_object_id(value: str) -> ObjectId | None:
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None
