"""Dependencies shared by the routes: the database session, the settings, a JSON body.

All are `async def`: FastAPI runs a plain `def` dependency in its thread pool, a hop per request.
(Authentication is AuthenticationMiddleware's, before the body is read.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from src.core.config import Settings
from src.core.database import Sessions


async def get_sessions(request: Request) -> Sessions:
    """Routes open their session with `async with sessions.open()`: it closes, and its connection goes
    back to the pool, before the response is sent (a yield dependency would hold it until after)."""
    sessions: Sessions = request.app.state.sessions
    return sessions


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def require_json_body(request: Request) -> None:
    """A body route accepts `application/json` (or a `+json` type) only: anything else is a 415."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise HTTPException(415, detail="Send the body as application/json.")


SessionsDep = Annotated[Sessions, Depends(get_sessions)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
