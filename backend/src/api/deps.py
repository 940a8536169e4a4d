"""What the routes share: the database, the settings, a JSON body.

None of them is a FastAPI dependency: each dependency is one more resolution on every request, which
the benchmark measured at several percent of a request's time. (Authentication is
AuthenticationMiddleware's, before the body is read.)"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from src.core.config import Settings
from src.core.database import Database


def database_of(request: Request) -> Database:
    """Routes take their connection with `async with database_of(request).connect()`: it goes back to
    the pool before the response is sent (a yield dependency would hold it until after)."""
    database: Database = request.app.state.database
    return database


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


class JsonBodyRoute(APIRoute):
    """A route that takes a body accepts `application/json` (or a `+json` type) only: anything else is a
    415, before the body is read or validated."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def json_only(request: Request) -> Response:
            media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media_type != "application/json" and not (
                media_type.startswith("application/") and media_type.endswith("+json")
            ):
                raise HTTPException(415, detail="Send the body as application/json.")
            return await handler(request)

        return json_only
