"""The change feed's table and the schemas of `GET /users/{user_id}/changes`.

`task_changes` holds one row per task a user has or had: the position of its latest change in the feed
(`seq`, ties broken by the task's id), and whether that change removed it (trashed it; a purge changes
nothing more). How positions are numbered so that no write is ever passed over: src/services/
sync_service.py and docs/design.md, "The change feed".
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ConfigDict
from sqlalchemy import BigInteger, Index, text
from sqlmodel import Field, SQLModel

from src.models.task import TASK_PUBLIC_EXAMPLE, USER_ID_MAX_LENGTH, TaskPublic
from src.models.types import UTCDateTime


class TaskChange(SQLModel, table=True):
    __tablename__ = "task_changes"
    __table_args__ = (
        # What a sync reads: the user's changes after a position, in order.
        Index("ix_task_changes_user_id_seq_task_id", "user_id", "seq", "task_id"),
        # What the purge of old removals reads.
        Index(
            "ix_task_changes_removed_changed_at",
            "changed_at",
            postgresql_where=text("deleted"),
            sqlite_where=text("deleted"),
        ),
    )

    user_id: str = Field(primary_key=True, max_length=USER_ID_MAX_LENGTH)
    task_id: uuid.UUID = Field(primary_key=True)
    seq: int = Field(sa_type=BigInteger)
    deleted: bool
    changed_at: datetime = Field(sa_type=UTCDateTime)


CHANGE_EXAMPLES: list[Any] = [
    {"id": TASK_PUBLIC_EXAMPLE["id"], "deleted": False, "task": TASK_PUBLIC_EXAMPLE},
    {"id": "019ac0c4-7a2b-7c10-8e4f-5d6a7b8c9d0e", "deleted": True, "task": None},
]


class TaskChangePublic(SQLModel):
    """One task's latest state since the token: the task, or that it was removed."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": CHANGE_EXAMPLES})  # type: ignore[assignment]

    id: uuid.UUID = Field(description="The task's id.")
    deleted: bool = Field(description="True when the task was deleted (trashed or purged): remove it.")
    task: TaskPublic | None = Field(description="The task as it is now; null when deleted.")


class ChangesPage(SQLModel):
    """What changed since the token, oldest change first; apply in order, then call again with
    `next_token` while `has_more` is true."""

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        json_schema_extra={
            "examples": [{"changes": CHANGE_EXAMPLES, "next_token": "eyJzIjo0Mn0.q1w2e3r4t5y6u7i8", "has_more": False}]
        },
    )

    changes: list[TaskChangePublic]
    next_token: str = Field(description="Pass as `since` on the next call.")
    has_more: bool = Field(description="True when more changes wait: call again at once with `next_token`.")
