"""Liveness, readiness and the internal key-id report."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency

from services.keys.keyring import KeyRing
from services.keys.report import KEYS_PATH, KeyReport, RingSeen
from services.kit.errors import ServiceUnavailable
from services.kit.mongo import ping


class Health(msgspec.Struct):
    status: str
    checks: dict[str, bool] = msgspec.field(default_factory=dict)


class HealthController(Controller):
    include_in_schema = False

    @get("/healthz", operation_id="healthz", sync_to_thread=False)
    def healthz(self) -> Health:
        return Health(status="ok")

    @get("/readyz", operation_id="readyz")
    async def readyz(self, state: State) -> Health:
        checks = {
            "database": await ping(state.db),
            "indexes": state.indexes_ready.is_set(),
            "jwtKeyring": state.jwt_keys.active_kid is not None,
            "internalKeyring": state.internal_keys.active_kid is not None,
        }
        if not all(checks.values()):
            failing = ", ".join(name for name, ok in checks.items() if not ok)
            raise ServiceUnavailable(f"Not ready: {failing}.", extra={"checks": checks})
        return Health(status="ready", checks=checks)


def ring_report(ring: KeyRing) -> RingSeen:
    ring.refresh(force=True)
    return RingSeen(active=ring.active_kid, kids=tuple(ring.kids()), loaded_at=ring.loaded_at)


class KeyIdsController(Controller):
    """Reports the ids (never the secrets) of the loaded keys, so rotation can confirm them."""

    path = KEYS_PATH
    include_in_schema = False

    @get("/", operation_id="loadedKeyIds")
    async def loaded_key_ids(
        self, request: Request[Any, Any, Any], internal_caller: NamedDependency[str]
    ) -> Response[KeyReport]:
        state = request.app.state
        report = KeyReport(
            service=state.settings.service_name,
            jwt=ring_report(state.jwt_keys),
            internal=ring_report(state.internal_keys),
        )
        return Response(report, headers={"Cache-Control": "no-store"})
