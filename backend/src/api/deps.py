"""What the routes share: the database and the settings.

Neither is a FastAPI dependency: each dependency is one more resolution on every request, which the
benchmark measured at several percent of a request's time. (Who may call a route is the route class's
business: src/api/access.py.)"""

from __future__ import annotations

from fastapi import Request

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
