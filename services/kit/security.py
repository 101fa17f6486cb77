"""Request authentication: bearer tokens for users, the internal API key for services.

Handlers declare what they need as a dependency: ``principal`` (any signed-in user),
``internal_caller`` (a service presenting the internal API key) or ``internal_or_admin`` (that,
or an admin's bearer token); a handler only admins may call, and that has no use for who the
admin is, takes the guard ``guards=[admin_only]``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.handlers import BaseRouteHandler

from services.keys.keyring import KeyringError
from services.keys.report import INTERNAL_KEY_HEADER
from services.kit.errors import Forbidden, Unauthorized
from services.kit.tokens import InvalidToken, Principal

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 200
RevocationCheck = Callable[[State, Principal], Awaitable[bool]]


def bearer_token(request: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def route_of(request: ASGIConnection[Any, Any, Any, Any]) -> str:
    # The route's template, not the path: a seed route carries the token in its path.
    return str(request.scope.get("path_template") or request.url.path)


def subject_deleted(user_id: str, route: str | None = None) -> Unauthorized:
    """The refusal of a token whose user was deleted, logged as every token refusal is."""
    log.info("token refused", extra={"reason": "subject deleted", "sub": user_id, "route": route})
    return Unauthorized("The token is invalid or expired.")


async def authenticate(
    request: ASGIConnection[Any, Any, Any, Any],
    token: str | None = None,
    *,
    check_revoked: bool = True,
) -> Principal:
    """Verify the request's bearer token (or ``token``) and, unless ``check_revoked`` is false
    (the handler checks it itself), that the subject is not revoked."""
    token = token or bearer_token(request)
    if token is None:
        raise Unauthorized("A bearer token is required.")
    state = request.app.state
    try:
        principal: Principal = state.tokens.verify(token)
    except InvalidToken as exc:
        # Bounded: the reason may quote a library's message about a hostile token.
        reason = str(exc)[:MAX_REASON_CHARS]
        log.info("token refused", extra={"reason": reason, "route": route_of(request)})
        raise Unauthorized("The token is invalid or expired.") from exc
    is_revoked: RevocationCheck | None = state.get("is_revoked") if check_revoked else None
    if is_revoked is not None and await is_revoked(state, principal):
        raise subject_deleted(principal.user_id, route_of(request))
    return principal


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    return await authenticate(request)


async def provide_principal_checked_by_handler(request: Request[Any, Any, Any]) -> Principal:
    """``principal`` for handlers whose write reads the user's deletion itself, fresh and under
    the lock the write takes (it must: a deletion may land between the token check and the
    write). The token-time check would be the same read twice in one request."""
    return await authenticate(request, check_revoked=False)


async def authenticate_admin(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal = await authenticate(connection)
    if not principal.is_admin:
        raise Forbidden("This operation needs the admin role.")
    return principal


async def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: the request carries an admin's bearer token (401 without a valid one, 403 for
    another role)."""
    await authenticate_admin(connection)


async def provide_internal_caller(request: Request[Any, Any, Any]) -> str:
    presented = request.headers.get(INTERNAL_KEY_HEADER)
    if not presented:
        log.warning("internal call refused", extra={"reason": "no key", "path": request.url.path})
        raise Unauthorized("An internal API key is required.")
    try:
        ok = request.app.state.internal_keys.matches_any(presented)
    except KeyringError as exc:
        log.error("internal keyring unavailable", extra={"error": str(exc)})
        ok = False
    if not ok:
        log.warning("internal call refused", extra={"reason": "bad key", "path": request.url.path})
        raise Unauthorized("The internal API key is not valid.")
    return "internal"


async def provide_internal_or_admin(request: Request[Any, Any, Any]) -> Principal | None:
    """A service presenting the internal API key (``None``), or else an admin's bearer token."""
    if request.headers.get(INTERNAL_KEY_HEADER):
        await provide_internal_caller(request)
        return None
    return await authenticate_admin(request)


def ensure_self_or_admin(principal: Principal, user_id: str) -> None:
    if principal.user_id != user_id and not principal.is_admin:
        raise Forbidden("You may only act on your own account.")


# A route's ``dependencies=`` for the handlers described at
# ``provide_principal_checked_by_handler``.
DELETION_CHECKED_BY_HANDLER = {
    "principal": Provide(provide_principal_checked_by_handler),
}

AUTH_DEPENDENCIES = {
    "principal": Provide(provide_principal),
    "internal_caller": Provide(provide_internal_caller),
    "internal_or_admin": Provide(provide_internal_or_admin),
}
