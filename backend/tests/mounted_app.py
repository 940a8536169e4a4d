"""The service mounted under `/tasks` in another ASGI app, as an operator may embed it:
`uvicorn tests.mounted_app:create_parent_app --factory`. Requests keep the prefix (`/tasks/api/v1/...`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Mount

from src.main import create_app

MOUNT_PREFIX = "/tasks"


def create_parent_app() -> Starlette:
    service = create_app()

    @asynccontextmanager
    async def lifespan(_parent: Starlette) -> AsyncIterator[None]:
        # A mounted app's lifespan is its parent's to run.
        async with service.router.lifespan_context(service):
            yield

    return Starlette(routes=[Mount(MOUNT_PREFIX, app=service)], lifespan=lifespan)
