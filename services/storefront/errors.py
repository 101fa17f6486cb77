"""Every failure as a page a shopper can act on: a service that is down (503 with Retry-After and
a "Try again" link), an unknown page (404), an expired form (403), a bad link (400). Never a stack
trace: the exception goes to the log with the request id, which the page shows."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.response import Template

from services.kit.errors import AppError
from services.kit.observability import current_request_id
from services.storefront.backend import Refused, SessionExpired
from services.storefront.pages import is_htmx
from services.storefront.pages import secure as cookies_secure
from services.storefront.session import SESSION_COOKIE, expired, redirect, safe_next, token_of

log = logging.getLogger(__name__)
Req = Request[Any, Any, Any]

TITLES = {
    400: "That link did not work",
    403: "This form has expired",
    404: "Page not found",
    405: "That is not possible here",
    409: "That could not be done",
    413: "That was too much at once",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Something is temporarily unavailable",
}
MESSAGES = {
    403: "The page was open too long or was opened in another browser. Go back, reload the "
    "page and try again.",
    404: "There is no page at this address. It may have moved, or the link may be mistyped.",
    500: "An unexpected error stopped this request. It has been logged; please try again.",
    503: "Part of the shop is not answering right now. Nothing was lost: try again in a moment.",
}


def error_page(
    request: Req, status: int, message: str | None = None, *, headers: dict[str, str] | None = None
) -> Response[Any]:
    sent = {"Cache-Control": "no-store", **(headers or {})}
    if is_htmx(request):
        # htmx swaps the page's main region for the error page's (the meta config in base.html
        # lets it swap error answers).
        sent |= {"HX-Retarget": "#main", "HX-Reswap": "outerHTML", "HX-Reselect": "#main"}
    if request.method == "GET":
        retry = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:  # the page the form was on, if it is one of ours
        retry = safe_next(urlsplit(request.headers.get("referer", "")).path)
    return Template(
        template_name="error.html",
        context={
            "status": status,
            "title": TITLES.get(status, "That could not be done"),
            "message": message or MESSAGES.get(status, ""),
            "request_id": current_request_id(),
            "retry_url": retry if status >= 500 else None,
            "signed_in": token_of(request) is not None,
            "cart_count": None,
            "flash": None,
            "path": request.url.path,
        },
        status_code=status,
        headers=sent,
    )


def session_expired(request: Req, exc: SessionExpired) -> Response[Any]:
    if request.method == "GET":
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        back = "/"
    target = f"/signin?next={back}"
    secure = cookies_secure(request.app.state)
    gone = expired(SESSION_COOKIE, secure)
    if is_htmx(request):
        return Response(b"", status_code=204, headers={"HX-Redirect": target}, cookies=[gone])
    return redirect(target, flash="session-expired", secure=secure, cookies=[gone])


def app_error(request: Req, exc: AppError) -> Response[Any]:
    if exc.status_code >= 500:
        log.warning("page unavailable", extra={"status": exc.status_code, "error": exc.detail})
    headers = {k: v for k, v in exc.headers.items() if k == "Retry-After"}
    if exc.status_code == 503:
        headers.setdefault("Retry-After", "2")
    message = None if exc.status_code >= 500 else exc.detail
    return error_page(request, exc.status_code, message, headers=headers)


def refused(request: Req, exc: Refused) -> Response[Any]:
    return error_page(request, exc.status, exc.detail)


def http_error(request: Req, exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        log.error("server error", extra={"status": status, "error": exc.detail})
        return error_page(request, status)
    if isinstance(exc, NotFoundException):
        return error_page(request, 404)
    if isinstance(exc, PermissionDeniedException):
        return error_page(request, 403)
    if isinstance(exc, ValidationException):
        problems = [
            f"{item.get('key') or 'the form'}: {item.get('message')}"
            for item in (exc.extra if isinstance(exc.extra, list) else [])
            if isinstance(item, dict)
        ]
        return error_page(request, 400, "; ".join(problems) or exc.detail)
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}
    return error_page(request, status, exc.detail, headers=headers)


def unexpected(request: Req, exc: Exception) -> Response[Any]:
    log.exception("unhandled error", exc_info=exc)
    return error_page(request, 500)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    SessionExpired: session_expired,
    Refused: refused,
    AppError: app_error,
    HTTPException: http_error,
    Exception: unexpected,
}
