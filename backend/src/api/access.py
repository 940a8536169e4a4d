"""Who may call each route: every route is private unless it is declared public.

Two places, each with one job. `AuthenticationMiddleware` says who is calling, from the bearer token,
for every request. The route, once routing has chosen it, says whether that caller may call it
(`GuardedRoute`): a private route needs an authenticated caller, and where its path names a user
(`{user_id}`) that user must be the caller. The check runs on the parameters routing extracted, never on
the URL, so it holds under any root path, proxy prefix or mount; and it runs before the route reads or
validates the body, so a missing token is a 401 and another user's path a 403 whatever else is wrong.

The app's own routes take `GuardedRoute` (private) or `PublicRoute`; `app.router.route_class` makes a
route added later with `@app.get(...)` private too; and at start-up `check_every_route_is_guarded`
refuses to serve a route that is neither, such as one from a plain `APIRouter`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ClassVar

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from src.api.problems import send_domain_problem
from src.core.database import Database, DatabaseBusyError
from src.core.errors import DomainError, MissingCredentialsError, PermissionDeniedError

# Set by AuthenticationMiddleware in the request's `scope["state"]`: the verified subject (a user id), or why
# the credentials sent were refused. Neither is set when the request carries no credentials.
CALLER = "caller"
CALLER_REFUSED = "caller_refused"
# The path parameter that names the user whose data a route touches.
OWNER_PARAMETER = "user_id"
BEARER_SECURITY: list[dict[str, list[str]]] = [{"HTTPBearer": []}]
_PUBLIC_ROUTES = "public_routes"

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def authorize(scope: Scope) -> str:
    """The caller's user id, if it may call the route routing chose; else a 401 or 403 domain error."""
    state: dict[str, Any] = scope.get("state") or {}
    caller: str | None = state.get(CALLER)
    if caller is None:
        refused: DomainError | None = state.get(CALLER_REFUSED)
        raise refused or MissingCredentialsError("a bearer token is required")
    owner = scope["path_params"].get(OWNER_PARAMETER)
    if owner is not None and owner != caller:
        raise PermissionDeniedError("the token does not grant access to this user's tasks")
    state["user_id"] = caller  # for the access log
    return caller


class GuardedRoute(APIRoute):
    """A route for authenticated callers only (the default), documented as needing the bearer token. An
    authenticated call holds a database slot for its whole work, taken as routing hands the request to
    the route, before FastAPI builds anything for it (`handle`). A route that takes a body accepts
    `application/json` (or a `+json` type) only: else a 415, before the body is read."""

    public: ClassVar[bool] = False

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        if not self.public:
            options["openapi_extra"] = {"security": BEARER_SECURITY, **(options.get("openapi_extra") or {})}
        super().__init__(path, endpoint, **options)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Waits for the request's database slot (src/core/database.py), at most `DB_ACQUIRE_TIMEOUT_SECONDS`,
        else answers 503 with `Retry-After`. Here, once routing has chosen the route and before FastAPI
        builds the request, a waiting request holds little and a refusal costs an eighth to a sixth of a
        served page (docs/design.md). A call without a verified caller (a 401), to a public route or with a method
        the route does not serve (a 405) needs no slot."""
        if self.public or CALLER not in scope.get("state", ()) or scope["method"] not in (self.methods or ()):
            await super().handle(scope, receive, send)
            return
        database: Database = scope["app"].state.database
        try:
            admission = await database.admit()
        except DatabaseBusyError as busy:
            await send_domain_problem(send, busy)
            return
        async with admission:
            await super().handle(scope, receive, send)

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if self.body_field is not None:
            handler = _json_only(handler)
        if self.public:
            return handler

        async def authorized(request: Request) -> Response:
            authorize(request.scope)
            return await handler(request)

        return authorized


class PublicRoute(GuardedRoute):
    """A route anyone may call: health probes, metrics, documentation."""

    public = True


def _json_only(handler: Handler) -> Handler:
    async def json_only(request: Request) -> Response:
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json" and not (
            media_type.startswith("application/") and media_type.endswith("+json")
        ):
            raise HTTPException(415, detail="Send the body as application/json.")
        return await handler(request)

    return json_only


def guard_new_routes(app: FastAPI, *, public: Iterable[BaseRoute]) -> None:
    """Declares the routes the framework made (the OpenAPI document, the docs pages and their files) public,
    and makes every route added from now on with the app's decorators private."""
    setattr(app.state, _PUBLIC_ROUTES, frozenset(id(route) for route in public))  # a Starlette route is not hashable
    app.router.route_class = GuardedRoute


def check_every_route_is_guarded(app: FastAPI) -> None:
    """Refuses to start when a route is neither guarded nor declared public."""
    declared_public: frozenset[int] = getattr(app.state, _PUBLIC_ROUTES, frozenset())
    unguarded = [
        f"{sorted(getattr(context, 'methods', None) or [])} {context.path}"
        for context in iter_route_contexts(app.routes)
        if not isinstance(context.original_route, GuardedRoute) and id(context.original_route) not in declared_public
    ]
    if unguarded:
        raise RuntimeError(
            "routes that are neither guarded nor declared public (use GuardedRoute or PublicRoute as the "
            "router's route_class): " + "; ".join(unguarded)
        )
