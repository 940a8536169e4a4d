"""The change feed: what changed in the user's tasks since a token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from src.api.access import GuardedRoute
from src.api.deps import database_of, settings_of
from src.api.json import json_response
from src.api.parameters import documented
from src.api.problems import problem_responses
from src.api.v1 import PREFIX
from src.api.v1.tasks import USER_ID
from src.models.sync import ChangesPage
from src.services import sync_service

router = APIRouter(
    prefix=f"{PREFIX}/users/{{user_id}}/changes",
    tags=["sync"],
    responses=problem_responses(401, 403, 413, 422, 500, 503),
    route_class=GuardedRoute,
)

CHANGES_DESCRIPTION = """
Without `since`: the user's tasks (a first, full sync), `limit` at a time. With `since`: every task created,
changed, restored (`deleted: false`, with the task as it is now) or deleted (`deleted: true`) after the
token, oldest change first, each task once in its latest state.

Every answer has a `next_token`: pass it as `since` on the next call, also between the pages of a first
sync, and call again at once while `has_more` is true. A client that applies each answer in order
(upserting or removing by `id`) holds exactly the user's tasks when `has_more` is false; a change
committed while it synced comes in a later answer. Polling with the latest token costs one index read.

Tokens are signed and bound to the user (another user's, or a changed one, is a 422). A token older
than `SYNC_RETENTION_DAYS` (30 by default) is a 410 `urn:tasks-api:problem:resync-required`, since
deletions older than that are forgotten: sync again from the start, without `since`.
"""


@router.get(
    "",
    operation_id="listChanges",
    response_model=ChangesPage,
    description=CHANGES_DESCRIPTION,
    summary="What changed in the user's tasks since a token.",
    responses=problem_responses(410),
    openapi_extra=documented(USER_ID),
)
async def list_changes(
    request: Request,
    since: Annotated[
        str | None,
        Query(min_length=1, max_length=1024, description="The `next_token` of an earlier answer, unchanged."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many changes.")] = 100,
) -> Response:
    settings = settings_of(request)
    async with database_of(request).connect() as connection:
        page = await sync_service.changes_since(
            connection=connection,
            user_id=USER_ID.value(request),
            since=since,
            limit=limit,
            token_key=settings.cursor_key,
            retention=settings.sync_retention,
        )
    return json_response(page)
