"""What the storefront keeps in the browser: the shopper's access token (HttpOnly, SameSite=Lax,
Secure under TLS; page scripts never see it), a one-shot message for the next page, and nothing
else. The cart, the orders and the account live in the services."""

from __future__ import annotations

import re
from typing import Any, Literal

from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.response import Redirect

SESSION_COOKIE = "session"
FLASH_COOKIE = "flash"

# Messages a redirect can leave for the next page, by code (the cookie carries only the code, so
# nothing a visitor sends is ever shown as a message).
FLASHES: dict[str, tuple[Literal["status", "alert"], str]] = {
    "signed-in": ("status", "Welcome back! You are signed in."),
    "registered": ("status", "Your account is ready and you are signed in."),
    "signed-out": ("status", "You are signed out."),
    "session-expired": (
        "alert",
        "Your session has expired; please sign in again. Your cart is kept.",
    ),
    "sign-in-needed": ("status", "Please sign in to continue."),
    "added": ("status", "Added to cart."),
    "updated": ("status", "Cart updated."),
    "removed": ("status", "Removed from cart."),
    "order-placed": ("status", "Thank you! Your order has been placed."),
    "account-deleted": ("status", "Your account has been deleted."),
    "cart-empty": ("alert", "Your cart is empty: there is nothing to order."),
}

_SAFE_NEXT = re.compile(r"^/(?![/\\])[\x21-\x7e]*$")


def safe_next(value: str | None, default: str = "/") -> str:
    """A same-site path to go to after signing in; anything else (another host) is refused."""
    if value and _SAFE_NEXT.match(value) and "\\" not in value:
        return value
    return default


def token_of(request: Request[Any, Any, Any]) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else ""


def cookie(name: str, value: str, secure: bool, max_age: int | None = None) -> Cookie:
    """Every cookie of the shop: the whole site, HttpOnly, SameSite=Lax, Secure under TLS."""
    return Cookie(
        key=name,
        value=value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def session_cookie(token: str, max_age: int, secure: bool) -> Cookie:
    return cookie(SESSION_COOKIE, token, secure, max_age)


def expired(name: str, secure: bool) -> Cookie:
    return cookie(name, "", secure, max_age=0)


def redirect(
    path: str,
    *,
    flash: str | None = None,
    secure: bool = False,
    cookies: list[Cookie] | None = None,
) -> Response[Any]:
    """A 303 See Other to ``path`` (after a form post the browser then GETs it)."""
    sent = list(cookies or [])
    if flash is not None:
        assert flash in FLASHES, flash
        sent.append(cookie(FLASH_COOKIE, flash, secure))
    return Redirect(path, status_code=303, cookies=sent)


def take_flash(request: Request[Any, Any, Any]) -> tuple[str, str] | None:
    code = request.cookies.get(FLASH_COOKIE)
    return FLASHES.get(code) if code else None
