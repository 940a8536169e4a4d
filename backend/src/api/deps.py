"""What the routes share: the database, the settings, a JSON body.

All are `async def`: FastAPI runs a plain `def` dependency in its thread pool, a hop per request.
(Authentication is AuthenticationMiddleware's, before the body is read.)"""

from __future__ import annotations

from fastapi import HTTPException, Request

from src.core.config import Settings
from src.core.database import Database

# The database and the settings are read from the app's state rather than injected with Depends: each
# dependency is one more resolution on every request, measured at a few percent of a request's time.


def database_of(request: Request) -> Database:
    """Routes take their connection with `async with database_of(request).connect()`: it goes back to
    the pool before the response is sent (a yield dependency would hold it until after)."""
    database: Database = request.app.state.database
    return database


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def require_json_body(request: Request) -> None:
    """A body route accepts `application/json` (or a `+json` type) only: anything else is a 415."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise HTTPException(415, detail="Send the body as application/json.")
