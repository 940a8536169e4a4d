"""The tasks table and the schemas the API reads and writes."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypedDict

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    GetJsonSchemaHandler,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError
from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, SmallInteger, Text, Uuid, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Column, Field, SQLModel

from src.models.types import UTCDateTime

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 1000
USER_ID_MAX_LENGTH = 128
TAG_MAX_LENGTH = 32
TAGS_PER_TASK = 20
# Far from the ends of what every database and Python can hold, so a time converted to UTC never overflows.
EARLIEST_DUE_AT = datetime(1, 1, 2, tzinfo=UTC)
LATEST_DUE_AT = datetime(9999, 12, 30, tzinfo=UTC)


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


def fold(text: str) -> str:
    """The form in which tags and searched text are compared: NFC, then Unicode case folding (so `MILK`,
    `milk` and `Milk` are one, and `Straße` matches `STRASSE`)."""
    return unicodedata.normalize("NFC", text).casefold()


class TaskPriority(StrEnum):
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


# What a search reads: the folded title and description, one space apart (a searched word holds no white
# space, so it never matches across the two). The same SQL text in the index and in every search.
SEARCHED_TEXT = "title_folded || ' ' || coalesce(description_folded, '')"

# Stored as a small integer so that a sort by priority is an index range scan in rank order.
PRIORITY_RANKS: dict[TaskPriority, int] = {priority: rank for rank, priority in enumerate(TaskPriority)}

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$")
RFC3339_DESCRIPTION = "RFC 3339 with an offset (`2026-12-05T17:00:00+01:00`); returned in UTC."


def _rfc3339_text(value: object) -> object:
    # pydantic would also take a number of seconds, or digits in a string, as a time.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _RFC3339.match(value) is None:
        raise PydanticCustomError("rfc3339", "time must be RFC 3339 with an offset, such as 2026-12-05T17:00:00Z")
    return value


def _in_utc(value: datetime) -> datetime:
    if not EARLIEST_DUE_AT <= value <= LATEST_DUE_AT:
        raise PydanticCustomError("time_out_of_range", "time must be between years 1 and 9999")
    return value.astimezone(UTC)


# An instant with an offset (a time without one is a 422), in UTC from here on.
Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_in_utc)]

_TAG_END = rf"[^{_TRIMMED}{_CONTROLS}]"
TAG_PATTERN = rf"^[{_TRIMMED}]*{_TAG_END}(?:[^{_CONTROLS}]{{0,{TAG_MAX_LENGTH - 2}}}{_TAG_END})?[{_TRIMMED}]*$"


def _clean_tag(value: str) -> str:
    return _reject_unstorable(value, unstorable=_UNSTORABLE_IN_TITLE, what="tag")


Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=TAG_MAX_LENGTH),
    AfterValidator(_clean_tag),
    WithJsonSchema({"type": "string", "pattern": TAG_PATTERN, "examples": ["work"]}),
]


def _distinct_tags(tags: list[str]) -> list[str]:
    """Tags that differ only in case are one tag: the first spelling stays, in the order given."""
    seen: set[str] = set()
    distinct = []
    for tag in tags:
        key = fold(tag)
        if key not in seen:
            seen.add(key)
            distinct.append(tag)
    return distinct


Tags = Annotated[list[Tag], AfterValidator(_distinct_tags)]

SEARCH_MAX_LENGTH = 200


def _searchable(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank_search", "q must hold at least one word")
    return _reject_unstorable(value, unstorable=_UNSTORABLE_IN_TITLE, what="q")


# What a list search is given: whitespace-separated words, each to be found in a title or description.
SearchQuery = Annotated[
    str,
    StringConstraints(min_length=1, max_length=SEARCH_MAX_LENGTH),
    AfterValidator(_searchable),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": SEARCH_MAX_LENGTH,
            "pattern": rf"^[^{_CONTROLS}]*[^{_TRIMMED}{_CONTROLS}][^{_CONTROLS}]*$",
        }
    ),
]

TASK_EXAMPLE: dict[str, Any] = {
    "title": "Buy milk",
    "description": "Two litres, semi-skimmed",
    "completed": False,
    "due_at": "2026-12-05T17:00:00Z",
    "priority": "high",
    "tags": ["home", "shopping"],
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
        Index("ix_tasks_user_id_due_at_id", "user_id", "due_at", "id"),
        Index("ix_tasks_user_id_completed_due_at_id", "user_id", "completed", "due_at", "id"),
        Index("ix_tasks_user_id_priority_id", "user_id", "priority", "id"),
        Index("ix_tasks_user_id_completed_priority_id", "user_id", "completed", "priority", "id"),
        # Search: the trigrams of the folded title and description (pg_trgm), which find the rows holding
        # a rare word among all users' (docs/design.md says why the owner is not in it). SQLite searches
        # without an index.
        Index(
            "ix_tasks_search",
            text(f"({SEARCHED_TEXT}) gin_trgm_ops"),
            postgresql_using="gin",
            info={"dialects": {"postgresql"}},  # read by alembic/env.py
        ).ddl_if(dialect="postgresql"),
        Index("ix_tasks_tag_keys", "tag_keys", postgresql_using="gin", info={"dialects": {"postgresql"}}).ddl_if(
            dialect="postgresql"
        ),
        CheckConstraint(f"priority >= 0 AND priority <= {len(TaskPriority) - 1}", name="priority_rank"),
    )

    id: uuid.UUID = Field(primary_key=True, sa_type=Uuid)
    user_id: str = Field(max_length=USER_ID_MAX_LENGTH)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    version: int
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    priority: int = Field(default=0, sa_column=Column(SmallInteger, nullable=False, server_default="0"))
    # The tags as the client spelt them, in its order; task_tags holds them again, folded, for filters.
    tags: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSON().with_variant(ARRAY(Text()), "postgresql"), nullable=False),
    )
    # The tags folded, which the tag filter reads on PostgreSQL (`tag_keys @> ...`, with its GIN index).
    tag_keys: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSON().with_variant(ARRAY(Text()), "postgresql"), nullable=False),
    )
    # fold(title) and fold(description), which searches compare; null on rows not yet indexed.
    title_folded: str | None = Field(default=None, sa_type=Text)
    description_folded: str | None = Field(default=None, sa_type=Text)


class TaskTag(SQLModel, table=True):
    """One tag on one task, folded: what the tag filter and the tags overview read."""

    __tablename__ = "task_tags"
    __table_args__ = (Index("ix_task_tags_user_id_tag_key_task_id", "user_id", "tag_key", "task_id"),)

    task_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    )
    tag_key: str = Field(primary_key=True, sa_type=Text)
    user_id: str = Field(max_length=USER_ID_MAX_LENGTH)
    tag: str = Field(max_length=TAG_MAX_LENGTH)


class TaskOrganisation(SQLModel):
    """When a task is due, how much it matters, and how it is grouped."""

    due_at: Instant | None = Field(default=None, description=f"When the task is due, or null. {RFC3339_DESCRIPTION}")
    priority: TaskPriority = Field(default=TaskPriority.NONE, description="How much the task matters.")
    tags: Tags = Field(
        default_factory=list,
        max_length=TAGS_PER_TASK,
        description=f"Up to {TAGS_PER_TASK} tags, each trimmed, 1 to {TAG_MAX_LENGTH} characters; tags that differ "
        "only in case are one tag (the first spelling is kept).",
    )


class TaskCreate(TaskOrganisation, TaskBase):
    """What a client sends to create a task."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [TASK_EXAMPLE]})  # type: ignore[assignment]


class TaskReplace(TaskCreate):
    """A full replacement: omitted fields take their defaults (description and due_at null, completed false,
    priority none, no tags)."""


class TaskPatch(SQLModel):
    """Any subset of the editable fields; `"description": null` clears the description."""

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        json_schema_extra={"examples": [{"completed": True}, {"description": None}, {"tags": ["work"]}]},
    )

    # A default of None that the type does not admit: omitted is fine, an explicit null is a 422.
    title: Title = Field(default=None, max_length=TITLE_MAX_LENGTH)
    description: Description | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    completed: StrictBool = Field(default=None)
    due_at: Instant | None = Field(default=None, description="`null` clears the due date.")
    priority: TaskPriority = Field(default=None)
    tags: Tags = Field(default=None, max_length=TAGS_PER_TASK, description="`[]` clears the tags.")


class TaskPublic(TaskBase):
    """A task as the API returns it: exactly these fields (the service selects them by name)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [TASK_PUBLIC_EXAMPLE]})  # type: ignore[assignment]

    id: uuid.UUID = Field(description="Server-made, time-ordered UUIDv7.")
    user_id: str
    completed_at: datetime | None = Field(description="When the task was last completed; null while pending.")
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="1 on create, +1 on every change.")
    due_at: datetime | None = Field(description="When the task is due (UTC), or null.")
    priority: TaskPriority
    tags: list[str]


class TaskPage(SQLModel):
    """One page of a user's tasks."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    items: list[TaskPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page.")


class TagCount(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    tag: str = Field(description="The spelling most of the tasks carrying this tag use.")
    count: int = Field(description="How many of the user's tasks carry the tag.")


class TagSummary(SQLModel):
    """Every tag on the user's tasks, completed or not: most used first, then by name; spellings that
    differ only in case are one tag."""

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid", json_schema_extra={"examples": [{"items": [{"tag": "work", "count": 12}]}]}
    )

    items: list[TagCount]


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
    due_at: datetime | str | None
    priority: str
    tags: list[str]


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
    # Tasks without a due date come last in both due-date orders.
    DUE_SOONEST_FIRST = "due_at"
    DUE_LATEST_FIRST = "-due_at"
    # Priorities rank none < low < medium < high.
    LOWEST_PRIORITY_FIRST = "priority"
    HIGHEST_PRIORITY_FIRST = "-priority"

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        # Client generators name each value after these (a value such as `-created_at` makes no name).
        schema = handler.resolve_ref_schema(handler(core_schema))
        schema["x-enum-varnames"] = [member.name for member in cls]
        return schema
