"""Pure ASGI middleware (no per-request task or thread): request ids, access log, last-resort 500, body cap."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.api.access import CALLER, CALLER_REFUSED
from src.api.problems import ProblemType, send_problem
from src.api.route_index import RouteIndex
from src.core.errors import DomainError, MissingCredentialsError
from src.core.logging import request_events_var, request_id_var
from src.core.metrics import observe_request
from src.core.security import TokenVerifier

_LENGTH_FRAMED = frozenset({"1.0", "1.1"})
_MAX_REQUEST_ID_LENGTH = 128

access_logger = logging.getLogger("src.access")
error_logger = logging.getLogger("src.errors")


def _header(scope: Scope, name: bytes) -> str | None:
    """A request header's first value, read straight from the ASGI scope (which gives names in lower
    case): every request passes through these middlewares, and a `Headers` object costs more."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None


def _accepted_request_id(value: str | None) -> str | None:
    """A proxy's request id is kept when it is 1..128 visible ASCII characters."""
    if value and len(value) <= _MAX_REQUEST_ID_LENGTH and all("!" <= char <= "~" for char in value):
        return value
    return None


class RequestContextMiddleware:
    """Gives each request an id (echoed in `X-Request-ID`, logged, put in problem bodies), writes one
    access line per request (with what it did: see `record_event`), puts the page policy on HTML answers,
    and turns any unhandled exception into a 500 problem without details."""

    def __init__(self, app: ASGIApp, *, route_index: RouteIndex, record_metrics: bool) -> None:
        self.app = app
        self.route_index = route_index
        self.record_metrics = record_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _accepted_request_id(_header(scope, b"x-request-id")) or secrets.token_hex(16)
        request_id_header = (b"x-request-id", request_id.encode())
        token = request_id_var.set(request_id)
        events: dict[str, Any] = {}
        events_token = request_events_var.set(events)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = [*message.get("headers", ()), request_id_header]
                if _is_html(headers):
                    headers.append(HTML_POLICY)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            error_logger.exception("unhandled error")
            if response_started:
                raise
            await send_problem(
                send_with_request_id,
                500,
                title="Internal Server Error",
                detail="The service failed to handle this request; quote the request_id when reporting it.",
                type_=ProblemType.INTERNAL,
            )
        finally:
            self._log_access(scope, status, time.perf_counter() - started, events)
            request_events_var.reset(events_token)
            request_id_var.reset(token)

    def _log_access(self, scope: Scope, status: int, seconds: float, events: dict[str, Any]) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        route = self.route_index.template_of(scope.get("route")) or "<unmatched>"
        access_logger.info(
            "request",
            extra={
                "method": scope["method"],
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "user_id": state.get("user_id", "-"),
                **events,
            },
        )
        if self.record_metrics:
            observe_request(scope["method"], route, status, seconds)


class BodySizeLimitMiddleware:
    """Refuses bodies over the limit with 413: at once when Content-Length says so, else as soon as the
    streamed bytes pass it, so an oversized body is never read whole."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_problem(send, 413, title="Content Too Large", detail=self._detail)
            return
        if (
            scope.get("http_version") in _LENGTH_FRAMED
            and (declared is None or declared.isdigit())
            and _header(scope, b"transfer-encoding") is None
        ):
            # HTTP/1 without chunked encoding: the server reads exactly Content-Length bytes (none when it
            # is absent), so the declared length checked above is all the body there can be.
            await self.app(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, detail=self._detail)
            return message

        await self.app(scope, receive_within_limit, send)

    @property
    def _detail(self) -> str:
        return f"The request body is larger than {self.max_bytes} bytes."


class AuthenticationMiddleware:
    """Says who is calling: the subject of a valid bearer token goes in the request's state, or, for a token
    that does not verify, why it was refused. It refuses nothing itself: each route, once routing has
    chosen it, decides whether that caller may call it (src/api/access.py)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (authorization := _header(scope, b"authorization")) is not None:
            state = scope.setdefault("state", {})
            try:
                state[CALLER] = await self._subject(scope, authorization)
            except DomainError as error:
                state[CALLER_REFUSED] = error
        await self.app(scope, receive, send)

    @staticmethod
    async def _subject(scope: Scope, authorization: str) -> str:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MissingCredentialsError("a bearer token is required")
        verifier: TokenVerifier = scope["app"].state.token_verifier
        return await verifier.verify(token.strip())


# Every HTML page the service serves (the docs) may load only the service's own scripts, styles and images,
# so it never reaches out to a CDN (ReDoc's bundle links a logo on one) and works with no internet. Chosen
# by the answer's media type, so it holds wherever the service is mounted.
HTML_POLICY = (
    b"content-security-policy",
    b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    b"script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; font-src 'self' data:; connect-src 'self'",
)


def _is_html(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name.lower() == b"content-type" and value.startswith(b"text/html") for name, value in headers)
