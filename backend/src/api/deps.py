"""Dependencies shared by the routes: the database session, the settings and the authenticated owner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from src.core.config import Settings
from src.core.database import open_session
from src.core.errors import PermissionDeniedError

bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="A JWT whose `sub` is the user id in the path (`make token USER=alice` prints one locally).",
)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async for session in open_session(request.app.state.sessionmaker):
        yield session


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def require_path_owner(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """Declares the bearer scheme in OpenAPI, and re-checks what AuthenticationMiddleware established:
    the verified token's subject owns the `{user_id}` collection in the path."""
    if getattr(request.state, "user_id", None) != request.path_params.get("user_id"):
        raise PermissionDeniedError("the token does not grant access to this user's tasks")


def require_json_body(request: Request) -> None:
    """A body route accepts `application/json` (or a `+json` type) only: anything else is a 415."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise HTTPException(415, detail="Send the body as application/json.")


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
