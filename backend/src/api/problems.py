"""RFC 9457 problem responses: the one place that turns errors into HTTP.

Problem bodies never echo request input (a field name is shown in `loc`, cleaned of characters that
cannot be encoded), so a hostile body cannot turn a 4xx into a 500 or smuggle text into a response.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Send

from src.core.errors import (
    AuthenticationError,
    ConflictError,
    DomainError,
    GoneError,
    InvalidInputError,
    MissingCredentialsError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    ServiceUnavailableError,
)
from src.core.logging import request_id_var

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = "2"
_MAX_LOC_TEXT = 64


class ProblemType:
    """The `type` URIs this service uses; each is described in docs/api.md."""

    VALIDATION = "urn:tasks-api:problem:validation-error"
    NOT_FOUND = "urn:tasks-api:problem:not-found"
    UNAUTHENTICATED = "urn:tasks-api:problem:unauthenticated"
    FORBIDDEN = "urn:tasks-api:problem:forbidden"
    PRECONDITION_FAILED = "urn:tasks-api:problem:precondition-failed"
    CONFLICT = "urn:tasks-api:problem:conflict"
    UNAVAILABLE = "urn:tasks-api:problem:service-unavailable"
    INTERNAL = "urn:tasks-api:problem:internal-error"
    RESYNC_REQUIRED = "urn:tasks-api:problem:resync-required"
    HTTP = "about:blank"


class ProblemDetailError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loc: list[str | int] = Field(description="Where the error is: `body`, `query`, `path` or `header`, then the field.")
    msg: str
    type: str = Field(description="A stable machine-readable error code, e.g. `string_too_long`.")


class Problem(BaseModel):
    """An RFC 9457 problem; `errors` is present on 422."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="A URI naming the kind of problem; see the API guide.")
    title: str
    status: int
    detail: str
    request_id: str = Field(description="Also in the service's log lines for this request.")
    errors: list[ProblemDetailError] | None = None


def problem_body(
    status: int,
    *,
    title: str,
    detail: str,
    type_: str = ProblemType.HTTP,
    errors: list[dict[str, Any]] | None = None,
) -> bytes:
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id_var.get(),
    }
    if errors is not None:
        body["errors"] = errors
    return json.dumps(body, ensure_ascii=False).encode()


async def send_problem(
    send: Send,
    status: int,
    *,
    title: str,
    detail: str,
    type_: str = ProblemType.HTTP,
    headers: dict[str, str] | None = None,
) -> None:
    """A problem answered straight on the ASGI `send`, where there is no response object to return (the
    middleware, a route refusing before FastAPI has built the request)."""
    body = problem_body(status, title=title, detail=detail, type_=type_)
    raw_headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def problem_response(
    status: int,
    *,
    title: str,
    detail: str,
    type_: str = ProblemType.HTTP,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = problem_body(status, title=title, detail=detail, type_=type_, errors=errors)
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _clean_loc(loc: Any) -> list[str | int]:
    cleaned: list[str | int] = []
    for part in loc:
        if isinstance(part, int):
            cleaned.append(part)
        else:
            text = str(part).encode("utf-8", "replace").decode("utf-8")
            cleaned.append(text if len(text) <= _MAX_LOC_TEXT else text[:_MAX_LOC_TEXT] + "…")
    return cleaned


def _validation_problem(errors: list[dict[str, Any]]) -> Response:
    return problem_response(
        422,
        title="Unprocessable Content",
        detail="The request is not valid: see errors.",
        type_=ProblemType.VALIDATION,
        errors=errors,
    )


# Messages that quote the input get a fixed text instead.
_FIXED_MESSAGES = {"uuid_parsing": "Input should be a valid UUID", "uuid_type": "Input should be a valid UUID"}


async def _on_validation_error(_request: Request, exc: RequestValidationError) -> Response:
    errors = [
        {
            "loc": _clean_loc(error["loc"]),
            "msg": _FIXED_MESSAGES.get(str(error["type"]), str(error["msg"])),
            "type": str(error["type"]),
        }
        for error in exc.errors()
    ]
    return _validation_problem(errors)


async def _on_http_error(request: Request, exc: HTTPException) -> Response:
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(request.app.state.route_index.methods_at(request.scope.get("route")))
    title = _STATUS_TITLES.get(exc.status_code, "Error")
    detail = _STATUS_DETAILS.get(exc.status_code, exc.detail)
    return problem_response(exc.status_code, title=title, detail=str(detail), headers=headers)


_STATUS_TITLES = {
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
}
_STATUS_DETAILS = {
    404: "No resource at this path.",
    405: "This resource does not support the method: see the Allow header.",
}


_DOMAIN_PROBLEMS: list[tuple[type[DomainError], int, str, str, dict[str, str]]] = [
    (MissingCredentialsError, 401, "Unauthorized", ProblemType.UNAUTHENTICATED, {"WWW-Authenticate": "Bearer"}),
    (NotFoundError, 404, "Not Found", ProblemType.NOT_FOUND, {}),
    (PreconditionFailedError, 412, "Precondition Failed", ProblemType.PRECONDITION_FAILED, {}),
    (ConflictError, 409, "Conflict", ProblemType.CONFLICT, {"Retry-After": "1"}),
    (GoneError, 410, "Gone", ProblemType.RESYNC_REQUIRED, {}),
    (
        AuthenticationError,
        401,
        "Unauthorized",
        ProblemType.UNAUTHENTICATED,
        {"WWW-Authenticate": 'Bearer error="invalid_token"'},
    ),
    (PermissionDeniedError, 403, "Forbidden", ProblemType.FORBIDDEN, {}),
    (
        ServiceUnavailableError,
        503,
        "Service Unavailable",
        ProblemType.UNAVAILABLE,
        {"Retry-After": RETRY_AFTER_SECONDS},
    ),
]


async def _on_domain_error(_request: Request, exc: DomainError) -> Response:
    return domain_problem(exc)


def domain_problem(exc: DomainError) -> Response:
    if isinstance(exc, InvalidInputError):
        return _validation_problem([{"loc": list(exc.loc), "msg": exc.detail, "type": exc.error_type}])
    status, title, type_, headers = _problem_of(exc)
    return problem_response(status, title=title, detail=exc.detail, type_=type_, headers=headers)


async def send_domain_problem(send: Send, exc: DomainError) -> None:
    """`domain_problem` sent straight on the ASGI `send`, for an error met before FastAPI built the request."""
    status, title, type_, headers = _problem_of(exc)
    await send_problem(send, status, title=title, detail=exc.detail, type_=type_, headers=headers)


def _problem_of(exc: DomainError) -> tuple[int, str, str, dict[str, str]]:
    for error_class, status, title, type_, headers in _DOMAIN_PROBLEMS:
        if isinstance(exc, error_class):
            return status, title, type_, headers
    raise exc


def service_unavailable(detail: str) -> Response:
    return problem_response(
        503,
        title="Service Unavailable",
        detail=detail,
        type_=ProblemType.UNAVAILABLE,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


async def _on_database_unavailable(_request: Request, exc: Exception) -> Response:
    lost_connection = isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )
    if not lost_connection:
        raise exc
    return service_unavailable("The database is not answering; retry shortly.")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _on_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(DomainError, _on_domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(DBAPIError, _on_database_unavailable)
    app.add_exception_handler(PoolTimeoutError, _on_database_unavailable)


_DOCUMENTED_PROBLEMS: dict[int, tuple[str, str, str, str]] = {
    # status: (when, type, title, detail)
    400: (
        "A malformed header (If-Match, If-None-Match, Idempotency-Key) or a body that cannot be decoded.",
        ProblemType.HTTP,
        "Bad Request",
        "If-Match must be `*` or a comma-separated list of quoted entity tags.",
    ),
    401: (
        "Missing, malformed, badly signed or expired bearer token.",
        ProblemType.UNAUTHENTICATED,
        "Unauthorized",
        "token has expired",
    ),
    403: (
        "The token's subject is not the user in the path.",
        ProblemType.FORBIDDEN,
        "Forbidden",
        "the token does not grant access to this user's tasks",
    ),
    404: (
        "No task with this id in this user's list.",
        ProblemType.NOT_FOUND,
        "Not Found",
        "no task with this id in this user's list",
    ),
    409: (
        "A request with the same Idempotency-Key is still being processed: retry after `Retry-After`.",
        ProblemType.CONFLICT,
        "Conflict",
        "a request with this Idempotency-Key is still being processed: retry in a moment",
    ),
    410: (
        "The `since` token is older than SYNC_RETENTION_DAYS: sync again from the start, without `since`.",
        ProblemType.RESYNC_REQUIRED,
        "Gone",
        "the token is older than 30 days, and deletions since may be forgotten: sync again from the start, "
        "without `since`",
    ),
    412: (
        "If-Match names a version the task is no longer at: nothing was changed.",
        ProblemType.PRECONDITION_FAILED,
        "Precondition Failed",
        "the task has changed since the version you sent in If-Match: get it again, then retry",
    ),
    413: (
        "Request body larger than 64 KiB.",
        ProblemType.HTTP,
        "Content Too Large",
        "The request body is larger than 65536 bytes.",
    ),
    415: (
        "The body is not sent as application/json.",
        ProblemType.HTTP,
        "Unsupported Media Type",
        "Send the body as application/json.",
    ),
    422: (
        "Invalid input: see `errors`.",
        ProblemType.VALIDATION,
        "Unprocessable Content",
        "The request is not valid: see errors.",
    ),
    500: (
        "A fault in the service: the body carries only a request id, also written in the log.",
        ProblemType.INTERNAL,
        "Internal Server Error",
        "The service failed to handle this request; quote the request_id when reporting it.",
    ),
    503: (
        "The database is not answering; retry after `Retry-After` seconds.",
        ProblemType.UNAVAILABLE,
        "Service Unavailable",
        "The database is not answering; retry shortly.",
    ),
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries, each with a realistic example, for the problems a route can return."""
    entries: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        when, type_, title, detail = _DOCUMENTED_PROBLEMS[status]
        example: dict[str, Any] = {
            "type": type_,
            "title": title,
            "status": status,
            "detail": detail,
            "request_id": "6f1c0d3e9a7b4c2e8f5a1b3c4d5e6f70",
        }
        if status == 422:
            example["errors"] = [
                {"loc": ["body", "title"], "msg": "String should have at least 1 character", "type": "string_too_short"}
            ]
        entries[status] = {"model": Problem, "description": when, "content": {"application/json": {"example": example}}}
    return entries
