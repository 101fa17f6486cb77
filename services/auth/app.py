"""The auth service app: users, password hashes, token issuing, and the deletion cascade."""

from __future__ import annotations

import asyncio
import logging

from litestar import Litestar
from litestar.datastructures import State

from services.auth.cascade import run_once
from services.auth.controllers import router
from services.auth.repository import UserRepository, create_indexes
from services.auth.schemas import UserCreate
from services.auth.service import AuthService, PasswordHashing
from services.auth.settings import AuthSettings
from services.kit.app import ServiceDefinition, create_service_app, every
from services.kit.tokens import Principal

log = logging.getLogger(__name__)


async def _build_service(app: Litestar) -> None:
    settings: AuthSettings = app.state.settings
    app.state.cascade_wake = asyncio.Event()  # set by a deletion: the cascade relay runs at once
    app.state.auth_service = AuthService(
        app.state.db, settings, app.state.tokens, PasswordHashing(settings)
    )


def _cascade_poll(app: Litestar) -> float:
    """The deletion cascade's relay runs this often, and at once after a deletion."""
    settings: AuthSettings = app.state.settings
    return settings.cascade_poll_seconds


async def _bootstrap_admin(app: Litestar) -> None:
    settings: AuthSettings = app.state.settings
    if not settings.bootstrap_admin_email:
        return
    if not settings.bootstrap_admin_password:
        log.error("BOOTSTRAP_ADMIN_EMAIL is set without BOOTSTRAP_ADMIN_PASSWORD; no admin made")
        return
    import msgspec

    data = msgspec.convert(
        {"email": settings.bootstrap_admin_email, "password": settings.bootstrap_admin_password},
        UserCreate,
    )
    user = await app.state.auth_service.ensure_admin(data.email, data.password)
    log.info("bootstrap admin ready", extra={"userId": user.id})


async def _user_is_gone(state: State, principal: Principal) -> bool:
    return not await UserRepository(state.db).is_active(principal.user_id)


SERVICE = ServiceDefinition(
    description="Users, sign-in and access tokens.",
    router=router,
    indexes=create_indexes,
    build=_build_service,
    on_ready=[_bootstrap_admin],
    background=[every(_cascade_poll, run_once, wake=lambda app: app.state.cascade_wake)],
    is_revoked=_user_is_gone,
)


def create_app(settings: AuthSettings) -> Litestar:
    return create_service_app(settings, SERVICE)
