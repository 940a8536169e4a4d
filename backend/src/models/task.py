"""The tasks table and the schemas the API reads and writes."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, TypedDict

from pydantic import AfterValidator, ConfigDict, GetJsonSchemaHandler, StrictBool, StringConstraints, WithJsonSchema
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError
from sqlalchemy import CheckConstraint, Index, Uuid
from sqlmodel import Field, SQLModel

from src.models.types import UTCDateTime

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 1000
USER_ID_MAX_LENGTH = 128


# Unicode's control (Cc), line and paragraph separator (Zl, Zp) and surrogate (Cs) characters, exactly:
# one regex search instead of a category lookup per character. A description may keep tab and newline.
_UNSTORABLE_IN_TITLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_UNSTORABLE_IN_DESCRIPTION = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _reject_unstorable(value: str, *, unstorable: re.Pattern[str], what: str) -> str:
    found = unstorable.search(value)
    if found is None:
        return value
    if unicodedata.category(found.group()) == "Cs":
        raise PydanticCustomError("surrogate_character", f"{what} must not contain lone surrogates")
    raise PydanticCustomError("control_character", f"{what} must not contain control characters")


def _clean_title(value: str) -> str:
    return _reject_unstorable(value, unstorable=_UNSTORABLE_IN_TITLE, what="title")


def _clean_description(value: str) -> str:
    return _reject_unstorable(value, unstorable=_UNSTORABLE_IN_DESCRIPTION, what="description")


# The JSON schemas say exactly what the validators accept, so a client (or a fuzzer) can tell a value that
# gets a 422 from one that does not: a title is trimmed of Unicode White_Space (as pydantic trims), and no
# stored text holds controls, line or paragraph separators. Lone surrogates, refused too, have no form in
# a JSON Schema pattern.
_TRIMMED = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_CONTROLS = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
_TITLE_END = rf"[^{_TRIMMED}{_CONTROLS}]"
TITLE_PATTERN = rf"^[{_TRIMMED}]*{_TITLE_END}(?:[^{_CONTROLS}]{{0,{TITLE_MAX_LENGTH - 2}}}{_TITLE_END})?[{_TRIMMED}]*$"
DESCRIPTION_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]*$"

Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX_LENGTH),
    AfterValidator(_clean_title),
    # 1 to 200 characters once trimmed, so the pattern bounds the length rather than minLength/maxLength.
    WithJsonSchema({"type": "string", "pattern": TITLE_PATTERN}),
]
Description = Annotated[
    str,
    StringConstraints(max_length=DESCRIPTION_MAX_LENGTH),
    AfterValidator(_clean_description),
    WithJsonSchema({"type": "string", "maxLength": DESCRIPTION_MAX_LENGTH, "pattern": DESCRIPTION_PATTERN}),
]

TASK_EXAMPLE: dict[str, Any] = {
    "title": "Buy milk",
    "description": "Two litres, semi-skimmed",
    "completed": False,
}
TASK_PUBLIC_EXAMPLE: dict[str, Any] = {
    "id": "019ac0c4-5f1e-7d3a-9b1e-3f6b2a1c9d40",
    "user_id": "alice",
    **TASK_EXAMPLE,
    "completed_at": None,
    "created_at": "2026-11-26T09:30:00.123456Z",
    "updated_at": "2026-11-26T09:30:00.123456Z",
    "version": 1,
}


class TaskBase(SQLModel):
    title: Title = Field(
        max_length=TITLE_MAX_LENGTH,
        description="One line, trimmed, 1 to 200 characters.",
    )
    description: Description | None = Field(
        default=None,
        max_length=DESCRIPTION_MAX_LENGTH,
        description="Free text up to 1000 characters (tab and newline allowed), or null.",
    )
    completed: StrictBool = Field(default=False, description="Whether the task is done.")


class Task(TaskBase, table=True):
    """A row of the tasks table. Every statement on it is keyed by `user_id`."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(
            f"length(title) >= 1 AND length(title) <= {TITLE_MAX_LENGTH}",
            name="title_length",
        ),
        CheckConstraint(
            f"description IS NULL OR length(description) <= {DESCRIPTION_MAX_LENGTH}",
            name="description_length",
        ),
        CheckConstraint(
            "(completed AND completed_at IS NOT NULL) OR (NOT completed AND completed_at IS NULL)",
            name="completed_at_matches_completed",
        ),
        CheckConstraint("version >= 1", name="version_positive"),
        # One index per sort order, with and without the status filter, each ending in the id tie-breaker,
        # so every page is an index range scan whatever the size of the user's list.
        Index("ix_tasks_user_id_created_at_id", "user_id", "created_at", "id"),
        Index("ix_tasks_user_id_updated_at_id", "user_id", "updated_at", "id"),
        Index("ix_tasks_user_id_title_id", "user_id", "title", "id"),
        Index(
            "ix_tasks_user_id_completed_created_at_id",
            "user_id",
            "completed",
            "created_at",
            "id",
        ),
        Index(
            "ix_tasks_user_id_completed_updated_at_id",
            "user_id",
            "completed",
            "updated_at",
            "id",
        ),
        Index("ix_tasks_user_id_completed_title_id", "user_id", "completed", "title", "id"),
    )

    id: uuid.UUID = Field(primary_key=True, sa_type=Uuid)
    user_id: str = Field(max_length=USER_ID_MAX_LENGTH)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    version: int


class TaskCreate(TaskBase):
    """What a client sends to create a task."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [TASK_EXAMPLE]})  # type: ignore[assignment]


class TaskReplace(TaskCreate):
    """A full replacement: omitted fields take their defaults (description null, completed false)."""


class TaskPatch(SQLModel):
    """Any subset of the editable fields; `"description": null` clears the description."""

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        json_schema_extra={"examples": [{"completed": True}, {"description": None}]},
    )

    # A default of None that the type does not admit: omitted is fine, an explicit null is a 422.
    title: Title = Field(default=None, max_length=TITLE_MAX_LENGTH)
    description: Description | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    completed: StrictBool = Field(default=None)


class TaskPublic(TaskBase):
    """A task as the API returns it: exactly these fields (the service selects them by name)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [TASK_PUBLIC_EXAMPLE]})  # type: ignore[assignment]

    id: uuid.UUID = Field(description="Server-made, time-ordered UUIDv7.")
    user_id: str
    completed_at: datetime | None = Field(description="When the task was last completed; null while pending.")
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="1 on create, +1 on every change.")


class TaskPage(SQLModel):
    """One page of a user's tasks."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    items: list[TaskPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page.")


class TaskRecord(TypedDict):
    """A task as the service hands it to the API: the fields of TaskPublic, in its order, unvalidated
    (they come from the database), so a page goes to JSON bytes without a model per row."""

    title: str
    description: str | None
    completed: bool
    id: uuid.UUID | str
    user_id: str
    completed_at: datetime | str | None
    created_at: datetime | str
    updated_at: datetime | str
    version: int


class TaskPageRecord(TypedDict):
    items: list[TaskRecord]
    next_cursor: str | None


class TaskStatusFilter(StrEnum):
    ALL = "all"
    PENDING = "pending"
    COMPLETED = "completed"


class TaskSort(StrEnum):
    """A list's order: a field, descending with a leading `-`; tasks that tie are ordered by id."""

    NEWEST_FIRST = "-created_at"
    OLDEST_FIRST = "created_at"
    RECENTLY_UPDATED_FIRST = "-updated_at"
    LEAST_RECENTLY_UPDATED_FIRST = "updated_at"
    TITLE_ASCENDING = "title"
    TITLE_DESCENDING = "-title"

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        # Client generators name each value after these (a value such as `-created_at` makes no name).
        schema = handler.resolve_ref_schema(handler(core_schema))
        schema["x-enum-varnames"] = [member.name for member in cls]
        return schema
