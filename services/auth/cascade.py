"""The user-deletion cascade relay.

A deleted user's tombstone lists the services still to be told (``cascadePending``). This worker
delivers each one through the service's internal endpoint, removes a target once it answers 2xx,
and otherwise (a failure, or a 202: done but to be confirmed by a later call) tries again later
with capped exponential backoff — across restarts too, because
the list lives in the database. Receivers are idempotent, so a repeated delivery is harmless.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta

from litestar import Litestar

from services.auth.repository import UserRepository
from services.kit.http import DependencyUnavailable, ServiceClient

log = logging.getLogger(__name__)

CASCADE_PATHS = {
    "cart": "/internal/v1/users/{user_id}/cart",
    "order": "/internal/v1/users/{user_id}/orders",
}


async def deliver(client: ServiceClient | None, target: str, user_id: str) -> bool:
    if client is None:
        log.warning("cascade target not configured", extra={"target": target})
        return False
    try:
        response = await client.request(
            "DELETE", CASCADE_PATHS[target].format(user_id=user_id), internal=True
        )
    except DependencyUnavailable as exc:
        log.info("cascade delivery failed", extra={"target": target, "reason": exc.reason})
        return False
    if response.status_code == 202:
        # Done, but not settled yet (cart: a write begun before the deletion may still land):
        # the receiver asks to be called again, and the next call deletes again.
        log.info("cascade accepted, to confirm", extra={"target": target, "userId": user_id})
        return False
    if response.is_success:
        return True
    log.warning(
        "cascade delivery refused",
        extra={"target": target, "status": response.status_code, "userId": user_id},
    )
    return False


async def run_once(app: Litestar) -> int:
    """Deliver every due cascade once; returns how many targets were acknowledged."""
    repo = UserRepository(app.state.db)
    clients: dict[str, ServiceClient] = app.state.clients
    max_delay = app.state.settings.cascade_retry_max_seconds
    acknowledged = 0
    for doc in await repo.due_cascades(datetime.now(UTC)):
        user_id = str(doc["_id"])
        failed = False
        for target in list(doc.get("cascadePending", [])):
            if await deliver(clients.get(target), target, user_id):
                await repo.acknowledge(doc["_id"], target)
                acknowledged += 1
                log.info("cascade delivered", extra={"target": target, "userId": user_id})
            else:
                failed = True
        if failed:
            attempts = int(doc.get("cascadeAttempts", 0)) + 1
            delay = min(max_delay, 0.5 * 2 ** min(attempts, 10)) * (0.5 + random.random() / 2)  # noqa: S311
            await repo.postpone(doc["_id"], datetime.now(UTC) + timedelta(seconds=delay), attempts)
    return acknowledged
