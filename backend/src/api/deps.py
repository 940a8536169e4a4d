"""Dependencies shared by the routes: the database session, the settings, a JSON body.

All are `async def`: FastAPI runs a plain `def` dependency in its thread pool, a hop per request.
(Authentication is AuthenticationMiddleware's, before the body is read.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncSession

from src.core.config import Settings
from src.core.database import Sessions


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessions: Sessions = request.app.state.sessions
    async with sessions.open() as session:
        yield session


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


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
