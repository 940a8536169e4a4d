"""The application factory: `uvicorn src.main:create_app --factory`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from src.api import health, metrics
from src.api.access import GuardedRoute, check_every_route_is_guarded, guard_new_routes
from src.api.middleware import (
    AuthenticationMiddleware,
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
)
from src.api.openapi import finish_openapi
from src.api.problems import install_problem_handlers
from src.api.route_index import RouteIndex
from src.api.v1 import changes, tags, tasks, trash
from src.core.config import Settings, load_settings
from src.core.database import Database, head_revision
from src.core.logging import configure_logging
from src.core.metrics import watch_pool
from src.core.runtime import settle_garbage_collector
from src.core.security import JwksCache, TokenVerifier
from src.services import housekeeping
from src.services.idempotency import purge_periodically

logger = logging.getLogger(__name__)

CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key", "X-Request-ID"]
CORS_EXPOSED_HEADERS = ["ETag", "Location", "X-Request-ID", "Retry-After"]
API_DESCRIPTION = """
Create, list, update, complete and delete each user's tasks.

Every route but the health probes and these docs needs `Authorization: Bearer <JWT>`, and a route under
`/api/v1/users/{user_id}` only answers a token whose `sub` is that `user_id`. Errors are RFC 9457
`application/problem+json` documents.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.effective_log_format)
    app = FastAPIOffline(
        title="Tasks API",
        version="1.0.0",
        description=API_DESCRIPTION,
        lifespan=_lifespan(settings),
        redirect_slashes=False,
        # The task routes are the app's first routes, matched once per request. Through include_router,
        # FastAPI 0.165 matches an included router's routes twice (to choose the router, then within it)
        # and only after its docs routes: 117 k more instructions per get, a tenth of the request
        # (docs/design.md). `routes` is FastAPI's public, if discouraged, way to give the app its routes.
        routes=[*tasks.router.routes, *tags.router.routes, *trash.router.routes, *changes.router.routes],
        openapi_tags=[
            {"name": "tasks", "description": "Each user's own tasks."},
            {"name": "trash", "description": "Deleted tasks, kept for `TRASH_RETENTION_DAYS` to be restored."},
            {"name": "sync", "description": "What changed since a client last synced."},
            {"name": "health", "description": "Probes for process managers and load balancers."},
        ],
    )
    app.state.settings = settings
    # Besides the task routes, the framework has made the OpenAPI document and the docs: those are public.
    # Every route from here on is private unless declared public (src/api/access.py).
    guard_new_routes(app, public=[route for route in app.routes if not isinstance(route, GuardedRoute)])

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finish_openapi(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    install_problem_handlers(app)
    app.include_router(health.router)
    if settings.metrics_enabled:
        app.include_router(metrics.router)
    app.state.route_index = RouteIndex(app)
    _install_middleware(app, settings)
    return app


def _lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up and shutdown: the database, the token verifier, the idempotency and trash purges."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_every_route_is_guarded(app)
        async with AsyncExitStack() as stack:
            database = Database(settings)
            stack.push_async_callback(database.dispose)
            jwks = None
            if settings.auth_jwks_url:
                client = await stack.enter_async_context(httpx.AsyncClient())
                jwks = JwksCache(settings.auth_jwks_url, settings, client)
            if settings.metrics_enabled:
                watch_pool(database.engine)
            app.state.database = database
            app.state.token_verifier = TokenVerifier(settings, jwks)
            app.state.schema_head = head_revision()
            purge = asyncio.create_task(
                purge_periodically(database, interval_seconds=settings.idempotency_purge_interval_seconds)
            )
            stack.push_async_callback(_stop, purge)  # before the engine is disposed: it may be mid-query
            trash_purge = asyncio.create_task(housekeeping.purge_periodically(database, settings))
            stack.push_async_callback(_stop, trash_purge)
            settle_garbage_collector()
            logger.info("service started", extra={"environment": settings.environment.value})
            yield

    return lifespan


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    """The last added runs first: CORS, request context, body size, authentication."""
    app.add_middleware(AuthenticationMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(
        RequestContextMiddleware, route_index=app.state.route_index, record_metrics=settings.metrics_enabled
    )
    if settings.cors_origins:
        # Outermost, so preflights are answered before authentication and every answer carries the headers.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=600,
        )
