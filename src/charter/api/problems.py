"""The one map from errors to problem-details responses.

Details never echo request content: domain errors carry their own wording, validation errors
keep only msgspec's message and the field's location, and anything unexpected is a bare 500
logged by type alone (driver errors can carry statement parameters, i.e. directive text).
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from charter.api.params import without_values
from charter.api.wire import Problem
from charter.errors import CharterError, RateLimited, StaleRevision

log = logging.getLogger("charter.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = "1"

_STATUS_BY_CODE = {
    "invalid-request": 400,
    "content-too-large": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not-found": 404,
    "already-exists": 409,
    "already-claimed": 409,
    "not-due": 409,
    "stale-revision": 409,
    "cycle-detected": 409,
    "invalid-transition": 409,
    "has-open-children": 409,
    "rollout-in-progress": 409,
    "idempotency-key-in-use": 409,
    "request-timeout": 408,
    "payload-too-large": 413,
    "unsupported-media-type": 415,
    "idempotency-key-reused": 422,
    "invalid-hierarchy": 422,
    "target-refused": 422,
    "undefined-variable": 422,
    "precondition-required": 428,
    "rate-limited": 429,
    "unavailable": 503,
}

# What a domain error may add to its problem: ids, numbers and times, never request content.
_EXTRA_FIELDS = (
    "current_revision",
    "etag",
    "holder",
    "expires_at",
    "not_before",
    "variable",
    "agents",
    "count",
)

_CODE_BY_HTTP_STATUS = {
    400: "invalid-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    408: "request-timeout",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
    503: "unavailable",
}


def problem_document(status: int, code: str, detail: str | None, **extra: Any) -> Problem:
    return Problem(
        type=f"https://charter.dev/problems/{code}",
        title=code.replace("-", " ").capitalize(),
        status=status,
        code=code,
        detail=detail,
        **extra,
    )


def problem(
    status: int, code: str, detail: str | None, headers: dict[str, str] | None = None, **extra: Any
) -> Response[Problem]:
    body = problem_document(status, code, detail, **extra)
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


# The errors' extra fields a problem document shows: none of them ever holds directive text.


def charter_error(_: Request[Any, Any, Any], exc: CharterError) -> Response[Problem]:
    status = _STATUS_BY_CODE.get(exc.code, 400)
    headers: dict[str, str] = {}
    if isinstance(exc, StaleRevision):
        status = 412 if exc.via_header else 409
        headers["ETag"] = f'"{exc.current_revision}"'
    if status == 503:
        headers["Retry-After"] = RETRY_AFTER_SECONDS
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    extra = {k: v for k, v in exc.extra.items() if k in _EXTRA_FIELDS}
    return problem(status, exc.code, exc.detail, headers or None, **extra)


def validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    errors = []
    if isinstance(exc.extra, list):
        for item in exc.extra:
            if isinstance(item, dict):
                error = {k: str(item[k]) for k in ("message", "key", "source") if k in item}
                if "message" in error:
                    error["message"] = _readable(error)
                errors.append(error)
    detail = errors[0]["message"] if errors and "message" in errors[0] else "the request is invalid"
    return problem(400, "invalid-request", detail, errors=errors or None)


def _readable(error: dict[str, str]) -> str:
    """A validation message for people: a parameter that is missing altogether comes as its
    name in quotes (a KeyError's text; the body's name is `data`)."""
    message, key = error["message"], error.get("key")
    if key is not None and message == repr(key):
        return "the request needs a JSON body" if key == "data" else f"{key} is required"
    return without_values(message)


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    code = _CODE_BY_HTTP_STATUS.get(status, "invalid-request" if status < 500 else "internal")
    detail = _HTTP_DETAILS.get(status, exc.detail if status < 500 else None)
    headers = dict(exc.headers or {})
    if status == 503:
        headers.setdefault("Retry-After", RETRY_AFTER_SECONDS)
    return problem(status, code, detail, headers or None)


_HTTP_DETAILS = {
    404: "no such resource",
    405: "method not allowed on this resource",
    413: "the request body is larger than the server accepts",
}


def undecodable_body(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    # msgspec's JSON decoder raises these, not DecodeError, for bytes that are not UTF-8 and
    # for nesting deeper than the stack allows: both are bad input, never a 500. Logged by type,
    # so one raised by a bug instead still shows.
    log.warning("undecodable %s on %s %s", type(exc).__name__, request.method, request.url.path)
    detail = "the request is not valid UTF-8 JSON, or is nested too deeply"
    return problem(400, "invalid-request", detail)


def _sqlstate(exc: BaseException) -> str | None:
    # asyncpg raises its own errors, unwrapped, while a pooled connection is being made;
    # SQLAlchemy keeps the code on the errors it wraps.
    code = getattr(exc.orig if isinstance(exc, DBAPIError) else exc, "sqlstate", None)
    return code if isinstance(code, str) else None


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout | ConnectionError | OSError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    # The server starting up, shutting down or crashed (57P…, e.g. "the database system is
    # starting up" right after a restart), a lost connection (08…), no connection slot left.
    code = _sqlstate(exc)
    return code is not None and (code.startswith(("08", "57P")) or code == "53300")


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    if _is_unavailable(exc):
        log.warning(
            "database unavailable: %s on %s %s",
            type(exc).__name__,
            request.method,
            request.url.path,
        )
        return problem(
            503,
            "unavailable",
            "the database is unreachable; retry shortly",
            {"Retry-After": RETRY_AFTER_SECONDS},
        )
    log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return problem(500, "internal", "an unexpected error occurred")


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    CharterError: charter_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    UnicodeDecodeError: undecodable_body,
    RecursionError: undecodable_body,
    Exception: unexpected_error,
}


def status_for(code: str) -> int:
    """The HTTP status of a problem code (the console's error pages answer with it too)."""
    return _STATUS_BY_CODE.get(code, 400)
