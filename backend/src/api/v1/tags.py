"""The tags overview: every tag on a user's tasks, with how many tasks carry it."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from src.api.access import GuardedRoute
from src.api.deps import database_of
from src.api.json import json_response
from src.api.parameters import documented
from src.api.problems import problem_responses
from src.api.v1 import PREFIX
from src.api.v1.tasks import USER_ID
from src.models.task import TagSummary
from src.services import task_service

router = APIRouter(
    prefix=f"{PREFIX}/users/{{user_id}}/tags",
    tags=["tasks"],
    responses=problem_responses(401, 403, 422, 500, 503),
    route_class=GuardedRoute,
)


@router.get("", operation_id="listTags", response_model=TagSummary, openapi_extra=documented(USER_ID))
async def list_tags(request: Request) -> Response:
    """List the tags on the user's tasks, most used first."""
    user_id: str = USER_ID.value(request)
    async with database_of(request).connect() as connection:
        items = await task_service.tag_summary(connection=connection, user_id=user_id)
    return json_response({"items": items})
