"""The trash: deleted tasks, kept whole until restored or purged, and the schemas of its routes.

A trashed task leaves the tasks table for a table of its own, so no list, lookup or index of live tasks
ever has to leave trashed rows out: a query that forgets a condition cannot show one. The trash has
every column of the tasks table, copied from it here (a column added to tasks is added to the trash by
the same migration, or `alembic check` fails), and the time of deletion.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict
from sqlalchemy import Column, Index, Table
from sqlmodel import Field, SQLModel

from src.models.task import TASK_PUBLIC_EXAMPLE, Task, TaskPublic, TaskRecord
from src.models.types import UTCDateTime

tasks: Table = Task.__table__  # type: ignore[attr-defined]

trashed_tasks = Table(
    "trashed_tasks",
    SQLModel.metadata,
    *(
        # No server defaults: a task enters the trash with every column given.
        Column(column.name, column.type, primary_key=column.primary_key, nullable=column.nullable)
        for column in tasks.columns
    ),
    Column("deleted_at", UTCDateTime(), nullable=False),
    # The trash in its order (most recently deleted first), one range per user; and the purge's order.
    Index("ix_trashed_tasks_user_id_deleted_at_id", "user_id", "deleted_at", "id"),
    Index("ix_trashed_tasks_deleted_at", "deleted_at"),
)

TRASHED_TASK_EXAMPLE: dict[str, Any] = {**TASK_PUBLIC_EXAMPLE, "deleted_at": "2026-11-30T18:02:11.482913Z"}


class TrashedTaskPublic(TaskPublic):
    """A task in the trash: the task as it was, and when it was deleted."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [TRASHED_TASK_EXAMPLE]})

    deleted_at: datetime = Field(description="When the task was deleted (UTC).")


class TrashPage(SQLModel):
    """One page of the user's trash, most recently deleted first."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    items: list[TrashedTaskPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page.")


class TrashEmptied(SQLModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"purged": 3}]})  # type: ignore[assignment]

    purged: int = Field(description="How many tasks were deleted for good.")


class CompletedCleared(SQLModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"deleted": 5}]})  # type: ignore[assignment]

    deleted: int = Field(description="How many completed tasks went to the trash.")


class TrashedTaskRecord(TaskRecord):
    deleted_at: datetime | str
