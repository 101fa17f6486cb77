"""Application errors and their one mapping to RFC 9457 problem+json responses."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from pymongo.errors import PyMongoError

from services.keys.keyring import KeyringError
from services.kit.observability import current_request_id

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://checkout.platform.io/problems/"


class AppError(Exception):
    """Base of every error a handler raises on purpose; carries its HTTP mapping."""

    status_code = 500
    title = "Internal Server Error"
    slug = "internal"

    def __init__(
        self,
        detail: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra or {}
        self.headers = headers or {}


class BadRequest(AppError):
    status_code, title, slug = 400, "Bad Request", "bad-request"


class Unauthorized(AppError):
    status_code, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("WWW-Authenticate", 'Bearer realm="checkout"')


class Forbidden(AppError):
    status_code, title, slug = 403, "Forbidden", "forbidden"


class NotFound(AppError):
    status_code, title, slug = 404, "Not Found", "not-found"


class Conflict(AppError):
    status_code, title, slug = 409, "Conflict", "conflict"


class TooManyRequests(AppError):
    status_code, title, slug = 429, "Too Many Requests", "rate-limited"

    def __init__(self, detail: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers["Retry-After"] = str(max(1, retry_after))


class ServiceUnavailable(AppError):
    status_code, title, slug = 503, "Service Unavailable", "unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers["Retry-After"] = str(max(1, retry_after))


_TITLES = {
    400: ("Bad Request", "bad-request"),
    401: ("Unauthorized", "unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("Not Found", "not-found"),
    405: ("Method Not Allowed", "method-not-allowed"),
    409: ("Conflict", "conflict"),
    413: ("Content Too Large", "too-large"),
    415: ("Unsupported Media Type", "unsupported-media-type"),
    429: ("Too Many Requests", "rate-limited"),
    500: ("Internal Server Error", "internal"),
    503: ("Service Unavailable", "unavailable"),
}


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    *,
    title: str | None = None,
    slug: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    default_title, default_slug = _TITLES.get(status, ("Error", "error"))
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (slug or default_slug),
        "title": title or default_title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    request_id = current_request_id()
    if request_id:
        body["requestId"] = request_id
    body.update(extra or {})
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def app_error_handler(request: Request[Any, Any, Any], exc: AppError) -> Response[dict[str, Any]]:
    return problem_response(
        request,
        exc.status_code,
        exc.detail,
        title=exc.title,
        slug=exc.slug,
        extra=exc.extra,
        headers=exc.headers,
    )


def _validation_errors(exc: ValidationException) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    if isinstance(exc.extra, list):
        for item in exc.extra:
            if isinstance(item, dict):
                errors.append({k: v for k, v in item.items() if k in {"key", "message", "source"}})
    return errors


def http_exception_handler(
    request: Request[Any, Any, Any], exc: HTTPException
) -> Response[dict[str, Any]]:
    status = exc.status_code
    if status >= 500:
        log.error("server error", extra={"status": status, "error": exc.detail})
        return problem_response(request, status, _TITLES.get(status, ("Error", ""))[0])
    extra: dict[str, Any] = {}
    detail = exc.detail
    if isinstance(exc.__cause__, SerializationException):
        detail = f"The request body is not valid JSON ({exc.detail})."
    elif isinstance(exc, ValidationException):
        extra["errors"] = _validation_errors(exc)
        if extra["errors"]:
            detail = "; ".join(
                f"{e.get('key') or 'body'}: {e.get('message')}" for e in extra["errors"]
            )
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() in {"allow"}}
    return problem_response(request, status, detail, extra=extra, headers=headers)


def unhandled_exception_handler(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[dict[str, Any]]:
    # The stack trace goes to the log, never to the client.
    log.exception("unhandled error", exc_info=exc)
    return problem_response(
        request, HTTP_500_INTERNAL_SERVER_ERROR, "An unexpected error occurred."
    )


def dependency_error_handler(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[dict[str, Any]]:
    # Our own database or keyring is not usable right now: the client may retry shortly.
    log.error("dependency failure", extra={"error": repr(exc)})
    return problem_response(
        request,
        503,
        "The service cannot reach its data right now; try again shortly.",
        headers={"Retry-After": "2"},
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    AppError: app_error_handler,
    PyMongoError: dependency_error_handler,
    KeyringError: dependency_error_handler,
    HTTPException: http_exception_handler,
    Exception: unhandled_exception_handler,
}
