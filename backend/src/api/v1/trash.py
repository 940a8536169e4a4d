"""Trash routes: the user's deleted tasks, to restore or purge for good."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from src.api.access import GuardedRoute
from src.api.conditional import IF_MATCH, expected_versions
from src.api.deps import database_of, settings_of
from src.api.json import json_response
from src.api.parameters import documented
from src.api.problems import problem_responses
from src.api.v1 import PREFIX
from src.api.v1.tasks import ETAG_HEADER, TASK_ID, USER_ID, task_response
from src.models.task import TaskPublic
from src.models.trash import TrashEmptied, TrashPage
from src.services import trash_service

router = APIRouter(
    prefix=f"{PREFIX}/users/{{user_id}}/trash",
    tags=["trash"],
    responses=problem_responses(401, 403, 413, 422, 500, 503),
    route_class=GuardedRoute,
)


@router.get("", operation_id="listTrash", response_model=TrashPage, openapi_extra=documented(USER_ID))
async def list_trash(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 50,
    cursor: Annotated[
        str | None,
        Query(min_length=1, max_length=1024, description="The `next_cursor` of the previous page, unchanged."),
    ] = None,
) -> Response:
    """List the user's deleted tasks, most recently deleted first, each with its `deleted_at`."""
    settings = settings_of(request)
    async with database_of(request).connect() as connection:
        page = await trash_service.list_trash(
            connection=connection,
            user_id=USER_ID.value(request),
            limit=limit,
            cursor=cursor,
            cursor_key=settings.cursor_key,
            retention=settings.trash_retention,
        )
    return json_response(page)


@router.post(
    "/{task_id}/restore",
    operation_id="restoreTask",
    response_model=TaskPublic,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(400, 404, 412)},
    openapi_extra=documented(USER_ID, TASK_ID, IF_MATCH),
)
async def restore_task(request: Request) -> Response:
    """Put a deleted task back in the user's lists, with all its fields and its version one higher."""
    async with database_of(request).connect() as connection:
        task = await trash_service.restore_task(
            connection=connection,
            user_id=USER_ID.value(request),
            task_id=TASK_ID.value(request),
            retention=settings_of(request).trash_retention,
            expected_versions=expected_versions(request),
        )
    return task_response(task)


@router.delete(
    "/{task_id}",
    operation_id="purgeTask",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 404),
    openapi_extra=documented(USER_ID, TASK_ID),
)
async def purge_task(request: Request) -> Response:
    """Delete a task in the trash for good."""
    async with database_of(request).connect() as connection:
        await trash_service.purge_task(
            connection=connection,
            user_id=USER_ID.value(request),
            task_id=TASK_ID.value(request),
            retention=settings_of(request).trash_retention,
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("", operation_id="emptyTrash", response_model=TrashEmptied, openapi_extra=documented(USER_ID))
async def empty_trash(request: Request) -> Response:
    """Delete every task in the user's trash for good."""
    async with database_of(request).connect() as connection:
        purged = await trash_service.empty_trash(connection=connection, user_id=USER_ID.value(request))
    return json_response({"purged": purged})
