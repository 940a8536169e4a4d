"""Task routes: HTTP in, one service call, HTTP out."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import Field, StringConstraints
from starlette.routing import Match
from starlette.types import Scope

from src.api.access import GuardedRoute
from src.api.conditional import IF_MATCH, IF_NONE_MATCH, etag_of, expected_versions, none_match
from src.api.deps import database_of, settings_of
from src.api.json import json_response
from src.api.parameters import DocumentedHeader, PathParameter, QueryParameter, documented
from src.api.problems import problem_responses
from src.api.v1 import PREFIX
from src.models.idempotency import IDEMPOTENCY_KEY_MAX_LENGTH
from src.models.task import (
    TAGS_PER_TASK,
    USER_ID_MAX_LENGTH,
    Instant,
    SearchQuery,
    Tag,
    TaskCreate,
    TaskPage,
    TaskPatch,
    TaskPriority,
    TaskPublic,
    TaskRecord,
    TaskReplace,
    TaskSort,
    TaskStatusFilter,
)
from src.models.trash import CompletedCleared
from src.services import task_service, trash_service
from src.services.task_listing import NO_FILTERS, TaskFilters

CLEAR_COMPLETED = "clear-completed"


class TaskRoute(GuardedRoute):
    """A task route: `{task_id}` never stands for a segment that names a route of its own, so that
    `PUT .../tasks/clear-completed` is a 405 of that route, not a write to a task of that id."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE and child_scope.get("path_params", {}).get("task_id") == CLEAR_COMPLETED:
            return Match.NONE, {}
        return match, child_scope


router = APIRouter(
    prefix=f"{PREFIX}/users/{{user_id}}/tasks",
    tags=["tasks"],
    responses=problem_responses(401, 403, 413, 422, 500, 503),
    route_class=TaskRoute,
)

USER_ID = PathParameter(
    "user_id",
    Annotated[
        str,
        StringConstraints(min_length=1, max_length=USER_ID_MAX_LENGTH, pattern=r"^[!-~]+$"),
        Field(examples=["alice"]),
    ],
    description="The owner's id; must equal the token's `sub`.",
)
TASK_ID = PathParameter("task_id", uuid.UUID, description="The task's id.")
IDEMPOTENCY_KEY = DocumentedHeader(
    "Idempotency-Key",
    description="1 to 255 visible ASCII characters, unique per intended create: a retry with the same key "
    "and body replays the first 201 instead of creating another task.",
    schema={
        "examples": ["5b3c1a9e-0c7f-4a36-9a57-2f1d8e6b4c21"],
        "minLength": 1,
        "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH,
        "pattern": "^[!-~]+$",
        "type": "string",
    },
)
PRIORITIES = QueryParameter(
    "priority",
    Annotated[list[TaskPriority], Field(max_length=len(TaskPriority))],
    "Only tasks of any of these priorities; repeat for several (`?priority=high&priority=medium`).",
    repeated=True,
    example=["high"],
)
TAGS = QueryParameter(
    "tag",
    Annotated[list[Tag], Field(max_length=TAGS_PER_TASK)],
    "Only tasks that carry every one of these tags, compared without regard to case; repeat for several.",
    repeated=True,
    example=["work"],
)
DUE_BEFORE = QueryParameter(
    "due_before",
    Instant,
    "Only tasks due strictly before this time (RFC 3339 with an offset; write `+` as `%2B`). Tasks without "
    "a due date are left out.",
    example="2026-12-31T00:00:00Z",
)
DUE_AFTER = QueryParameter(
    "due_after",
    Instant,
    "Only tasks due at or after this time (RFC 3339 with an offset). Tasks without a due date are left out.",
    example="2026-12-01T00:00:00Z",
)
SEARCH = QueryParameter(
    "q",
    SearchQuery,
    "Only tasks in which every word of `q` appears in the title or the description, compared without regard "
    "to case; `%`, `_` and `\\` are ordinary characters.",
    example="milk",
)
ETAG_HEADER = {"ETag": {"description": "The task's version as a strong entity tag.", "schema": {"type": "string"}}}
TOGGLE_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"headers": ETAG_HEADER}, **problem_responses(400, 404, 412)}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {**TOGGLE_RESPONSES, **problem_responses(415)}


def checked_idempotency_key(key: str | None) -> str | None:
    if key is not None and not (1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH and all("!" <= c <= "~" for c in key)):
        raise HTTPException(400, detail="Idempotency-Key must be 1 to 255 visible ASCII characters.")
    return key


def task_response(task: TaskRecord, status_code: int = status.HTTP_200_OK, **headers: str) -> Response:
    return json_response(task, status_code=status_code, headers={"ETag": etag_of(task["version"]), **headers})


@router.post(
    "",
    operation_id="createTask",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=documented(USER_ID, IDEMPOTENCY_KEY),
    response_model=TaskPublic,
    responses={
        **problem_responses(400, 409, 415),
        201: {
            "headers": {
                "Location": {
                    "description": "The new task's URL.",
                    "schema": {"type": "string"},
                },
                **ETAG_HEADER,
            }
        },
    },
)
async def create_task(request: Request, data: TaskCreate) -> Response:
    """Create a task in the user's list; with an Idempotency-Key, a retry replays the first answer."""
    user_id: str = USER_ID.value(request)
    key = checked_idempotency_key(IDEMPOTENCY_KEY.value(request))
    async with database_of(request).connect() as connection:
        created = await task_service.create_task(
            connection=connection,
            user_id=user_id,
            data=data,
            idempotency_key=key,
            idempotency_retention=timedelta(seconds=settings_of(request).idempotency_retention_seconds),
        )
    location = _task_location(request, user_id, created.task["id"])
    return task_response(created.task, status.HTTP_201_CREATED, Location=location)


def _task_location(request: Request, user_id: str, task_id: uuid.UUID | str) -> str:
    """The task's URL (get_task's path: the collection's, then the id), percent-encoded so that a user id
    with `?`, `#` or `%` still leads back to it."""
    root_path: str = request.scope.get("root_path", "")
    return f"{root_path}{router.prefix.format(user_id=quote(user_id, safe=''))}/{task_id}"


@router.get(
    "",
    operation_id="listTasks",
    response_model=TaskPage,
    openapi_extra=documented(USER_ID, PRIORITIES, TAGS, DUE_BEFORE, DUE_AFTER, SEARCH),
)
async def list_tasks(
    request: Request,
    status_filter: Annotated[
        TaskStatusFilter, Query(alias="status", description="Which tasks to list.")
    ] = TaskStatusFilter.ALL,
    sort: Annotated[
        TaskSort,
        Query(
            description="Sort order; `-` means descending. Ties are ordered by id. Tasks without a due date come "
            "last in both due-date orders; priorities rank none, low, medium, high."
        ),
    ] = TaskSort.NEWEST_FIRST,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=1024,
            description="The `next_cursor` of the previous page, unchanged.",
        ),
    ] = None,
) -> Response:
    """List the user's tasks, one page at a time, narrowed by any of the filters."""
    user_id: str = USER_ID.value(request)
    filters = _filters(request)
    async with database_of(request).connect() as connection:
        page = await task_service.list_tasks(
            connection=connection,
            user_id=user_id,
            status=status_filter,
            sort=sort,
            limit=limit,
            cursor=cursor,
            cursor_key=settings_of(request).cursor_key,
            filters=filters,
        )
    return json_response(page)


def _filters(request: Request) -> TaskFilters:
    if not request.scope.get("query_string"):
        return NO_FILTERS
    return TaskFilters.of(
        priorities=PRIORITIES.value(request),
        tags=TAGS.value(request),
        due_before=DUE_BEFORE.value(request),
        due_after=DUE_AFTER.value(request),
        query=SEARCH.value(request),
    )


@router.get(
    "/{task_id}",
    operation_id="getTask",
    openapi_extra=documented(USER_ID, TASK_ID, IF_NONE_MATCH),
    response_model=TaskPublic,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "The copy named in If-None-Match is current.", "headers": ETAG_HEADER},
        **problem_responses(400, 404),
    },
)
async def get_task(request: Request) -> Response:
    """Get one task; with If-None-Match, a 304 when the client's copy is current."""
    user_id: str = USER_ID.value(request)
    task_id: uuid.UUID = TASK_ID.value(request)
    async with database_of(request).connect() as connection:
        task = await task_service.get_task(connection=connection, user_id=user_id, task_id=task_id)
    if none_match(IF_NONE_MATCH.value(request), task["version"]):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag_of(task["version"])})
    return task_response(task)


@router.put(
    "/{task_id}",
    operation_id="replaceTask",
    response_model=TaskPublic,
    responses=WRITE_RESPONSES,
    openapi_extra=documented(USER_ID, TASK_ID, IF_MATCH),
)
async def replace_task(request: Request, data: TaskReplace) -> Response:
    """Replace a task: omitted fields return to their defaults."""
    user_id: str = USER_ID.value(request)
    task_id: uuid.UUID = TASK_ID.value(request)
    async with database_of(request).connect() as connection:
        task = await task_service.replace_task(
            connection=connection,
            user_id=user_id,
            task_id=task_id,
            data=data,
            expected_versions=expected_versions(request),
        )
    return task_response(task)


@router.patch(
    "/{task_id}",
    operation_id="updateTask",
    response_model=TaskPublic,
    responses=WRITE_RESPONSES,
    openapi_extra=documented(USER_ID, TASK_ID, IF_MATCH),
)
async def patch_task(request: Request, data: TaskPatch) -> Response:
    """Change some fields of a task; `"description": null` clears the description."""
    user_id: str = USER_ID.value(request)
    task_id: uuid.UUID = TASK_ID.value(request)
    async with database_of(request).connect() as connection:
        task = await task_service.patch_task(
            connection=connection,
            user_id=user_id,
            task_id=task_id,
            data=data,
            expected_versions=expected_versions(request),
        )
    return task_response(task)


@router.patch(
    "/{task_id}/complete",
    operation_id="toggleTask",
    response_model=TaskPublic,
    responses=TOGGLE_RESPONSES,
    openapi_extra=documented(USER_ID, TASK_ID, IF_MATCH),
)
async def toggle_completion(request: Request) -> Response:
    """Toggle a task between completed and pending."""
    user_id: str = USER_ID.value(request)
    task_id: uuid.UUID = TASK_ID.value(request)
    async with database_of(request).connect() as connection:
        task = await task_service.toggle_completion(
            connection=connection,
            user_id=user_id,
            task_id=task_id,
            expected_versions=expected_versions(request),
        )
    return task_response(task)


@router.post(
    f"/{CLEAR_COMPLETED}",
    operation_id="clearCompleted",
    response_model=CompletedCleared,
    openapi_extra=documented(USER_ID),
)
async def clear_completed(request: Request) -> Response:
    """Move every completed task of the user to the trash, in one step."""
    async with database_of(request).connect() as connection:
        deleted = await trash_service.clear_completed(connection=connection, user_id=USER_ID.value(request))
    return json_response({"deleted": deleted})


@router.delete(
    "/{task_id}",
    operation_id="deleteTask",
    openapi_extra=documented(USER_ID, TASK_ID, IF_MATCH),
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 404, 412),
)
async def delete_task(request: Request) -> Response:
    """Delete a task; it waits in the trash, from which it can be restored."""
    user_id: str = USER_ID.value(request)
    task_id: uuid.UUID = TASK_ID.value(request)
    async with database_of(request).connect() as connection:
        await trash_service.trash_task(
            connection=connection,
            user_id=user_id,
            task_id=task_id,
            expected_versions=expected_versions(request),
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
