"""Kit tests that need a database get one of their own on the session's MongoDB-protocol server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.local.mongo_server import MongoServer


@pytest.fixture
async def db(
    mongo_server: MongoServer, db_prefix: str, request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    """A database named after the test module (``<prefix>_locks`` for test_locks)."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_server.uri)
    try:
        yield client[
            f"{db_prefix}_{request.module.__name__.rsplit('.', 1)[-1].removeprefix('test_')}"
        ]
    finally:
        await client.close()
