"""Fixed-window rate limits counted in MongoDB, so every replica shares one count.

Expired windows are purged by the limiter itself rather than by a TTL index, because FerretDB
(one of the two servers this runs on) does not implement ``expireAfterSeconds``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pymongo import ReturnDocument

from services.kit.errors import TooManyRequests
from services.kit.locks import KeyedLocks
from services.kit.mongo import Database


class RateLimiter:
    def __init__(self, db: Database, *, window_seconds: int) -> None:
        self.counters = db.rate_limits
        self.window = window_seconds
        self._purged_at = 0.0
        self._locks = KeyedLocks(db.locks, "ratelimit")

    async def hit(self, scope: str, key: str, limit: int) -> None:
        """Count one event for ``scope:key``; raise 429 with Retry-After once over ``limit``."""
        now = time.time()
        window = int(now // self.window)
        window_end = (window + 1) * self.window
        counter_id = f"{scope}:{key}:{window}"
        async with self._locks.hold(counter_id):
            doc = await self.counters.find_one_and_update(
                {"_id": counter_id},
                {
                    "$inc": {"n": 1},
                    "$setOnInsert": {"expireAt": datetime.fromtimestamp(window_end, UTC)},
                },
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        if now - self._purged_at > self.window:
            self._purged_at = now
            await self.counters.delete_many({"expireAt": {"$lt": datetime.fromtimestamp(now, UTC)}})
        if doc is not None and doc["n"] > limit:
            raise TooManyRequests(
                "Too many sign-in attempts; try again later.",
                retry_after=int(window_end - now) + 1,
            )
