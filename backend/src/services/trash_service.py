"""The trash: deleting a task moves it here, whole; from here it is restored, or purged for good.

A move is a DELETE ... RETURNING every column from one table and an INSERT of exactly those rows into the
other, in one transaction: what was taken is what is stored, so a task changed or completed meanwhile by
another request is either moved in its latest state or not moved at all, never lost or doubled.

A trashed task older than the retention (`TRASH_RETENTION_DAYS`) is gone as far as the API can tell (no
route shows, restores or counts it) even before the periodic purge deletes it; the purge works in small
batches and skips any row a request holds, so it never makes a request wait.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import Executable, Select, and_, bindparam, delete, select, tuple_

from src.core.database import Connection, delete_in_batches
from src.core.errors import NotFoundError
from src.core.logging import record_event
from src.core.metrics import count_task_operation
from src.models.task import TaskRecord
from src.models.trash import TrashedTaskRecord, trashed_tasks
from src.services.pagination import TRASH, ListShape, PagePosition, decode_cursor, encode_cursor
from src.services.sync_service import record_changes
from src.services.task_listing import OWNER_ID, PUBLIC_COLUMNS, public_columns, tasks
from src.services.task_service import (
    INSERT_TASK,
    TaskVersionMismatch,
    Versions,
    if_match_slots,
    insert_every_column,
    new_values,
    owned,
    precondition,
    tag_task,
    utcnow,
    why_unchanged,
)

PURGE_BATCH = 500
_TRASH_SHAPE = ListShape(sort="-deleted_at", status=TRASH)
_KEPT_SINCE = bindparam("kept_since", type_=trashed_tasks.c.deleted_at.type)
_KEPT = trashed_tasks.c.deleted_at >= _KEPT_SINCE

_TAKE_COMPLETED = (
    delete(tasks).where(tasks.c.user_id == OWNER_ID, tasks.c.completed.is_(True)).returning(*tasks.columns)
)
_PUT_IN_TRASH = insert_every_column(trashed_tasks)
_PUT_BACK = INSERT_TASK.returning(*PUBLIC_COLUMNS)
_TRASHED_VERSION_OF = select(trashed_tasks.c.version).where(owned(trashed_tasks), _KEPT)
_PURGE = delete(trashed_tasks).where(owned(trashed_tasks), _KEPT)
_EMPTY = delete(trashed_tasks).where(trashed_tasks.c.user_id == OWNER_ID)
# The oldest expired rows, a batch at a time; rows a request has locked (a restore, a purge) are skipped.
_PURGE_EXPIRED = delete(trashed_tasks).where(
    trashed_tasks.c.id.in_(
        select(trashed_tasks.c.id)
        .where(trashed_tasks.c.deleted_at < _KEPT_SINCE)
        .order_by(trashed_tasks.c.deleted_at)
        .limit(PURGE_BATCH)
        .with_for_update(skip_locked=True)
    )
)


class TrashedTaskNotFound(NotFoundError):
    def __init__(self) -> None:
        super().__init__("no task with this id in this user's trash")


@cache
def _take_task(version_slots: int) -> Executable:
    return delete(tasks).where(owned(tasks, version_slots)).returning(*tasks.columns)


@cache
def _take_from_trash(version_slots: int) -> Executable:
    return delete(trashed_tasks).where(owned(trashed_tasks, version_slots), _KEPT).returning(*trashed_tasks.columns)


@cache
def _trash_page(after_cursor: bool) -> Select[Any]:
    conditions = [trashed_tasks.c.user_id == OWNER_ID, _KEPT]
    if after_cursor:
        position = tuple_(trashed_tasks.c.deleted_at, trashed_tasks.c.id)
        after = tuple_(
            bindparam("after_key", type_=trashed_tasks.c.deleted_at.type),
            bindparam("after_id", type_=trashed_tasks.c.id.type),
        )
        conditions.append(position < after)
    return (
        select(*public_columns(trashed_tasks), trashed_tasks.c.deleted_at.label("deleted_at"))
        .where(and_(*conditions))
        .order_by(trashed_tasks.c.deleted_at.desc(), trashed_tasks.c.id.desc())
        .limit(bindparam("limit"))
    )


def _kept_since(retention: timedelta) -> datetime:
    return utcnow() - retention


def _into_trash(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    return new_values({**row, "deleted_at": now})


async def trash_task(
    *, connection: Connection, user_id: str, task_id: uuid.UUID, expected_versions: Versions = None
) -> None:
    """DELETE of a task: it leaves every list and lookup, and waits in the trash."""
    params = {"owner_id": user_id, "task_id": task_id, **precondition(expected_versions)}
    await connection.begin()
    taken = await connection.fetch(_take_task(if_match_slots(expected_versions)), params)
    if not taken:
        unchanged = await why_unchanged(
            connection=connection, user_id=user_id, task_id=task_id, expected_versions=expected_versions
        )
        await connection.rollback()
        raise unchanged
    now = utcnow()
    await connection.execute(_PUT_IN_TRASH, _into_trash(taken[0], now))
    await record_changes(connection, user_id, [task_id], removed=True, now=now)
    await connection.commit()
    count_task_operation("delete")
    record_event("task deleted", task_id=str(task_id))


async def clear_completed(*, connection: Connection, user_id: str) -> int:
    """Every completed task of the user to the trash, in one transaction; how many went."""
    await connection.begin()
    taken = await connection.fetch(_TAKE_COMPLETED, {"owner_id": user_id})
    if taken:
        now = utcnow()
        await connection.execute_many(_PUT_IN_TRASH, [_into_trash(row, now) for row in taken])
        await record_changes(connection, user_id, [row["id"] for row in taken], removed=True, now=now)
    await connection.commit()
    count_task_operation("clear_completed")
    record_event("completed tasks cleared", count=len(taken))
    return len(taken)


async def list_trash(
    *,
    connection: Connection,
    user_id: str,
    limit: int,
    cursor: str | None,
    cursor_key: bytes,
    retention: timedelta,
) -> dict[str, Any]:
    """One keyset page of the trash, most recently deleted first."""
    params: dict[str, Any] = {"owner_id": user_id, "kept_since": _kept_since(retention), "limit": limit + 1}
    if cursor is not None:
        after = decode_cursor(cursor, key=cursor_key, user_id=user_id, shape=_TRASH_SHAPE)
        params.update(after_key=after.sort_key, after_id=after.task_id)
    rows = await connection.fetch(_trash_page(cursor is not None), params)
    items = cast(list[TrashedTaskRecord], rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        position = PagePosition(sort_key=last["deleted_at"], task_id=last["id"])  # type: ignore[arg-type]
        next_cursor = encode_cursor(position, key=cursor_key, user_id=user_id, shape=_TRASH_SHAPE)
    return {"items": items, "next_cursor": next_cursor}


async def restore_task(
    *,
    connection: Connection,
    user_id: str,
    task_id: uuid.UUID,
    retention: timedelta,
    expected_versions: Versions = None,
) -> TaskRecord:
    """Back into the lists with every field it had, its version one higher."""
    kept_since = _kept_since(retention)
    params = {"owner_id": user_id, "task_id": task_id, "kept_since": kept_since, **precondition(expected_versions)}
    await connection.begin()
    taken = await connection.fetch(_take_from_trash(if_match_slots(expected_versions)), params)
    if not taken:
        # As in why_unchanged: without If-Match, a restore that found nothing to take is a 404.
        found = expected_versions is not None and await connection.fetch(
            _TRASHED_VERSION_OF, {"owner_id": user_id, "task_id": task_id, "kept_since": kept_since}
        )
        await connection.rollback()
        raise TaskVersionMismatch() if found else TrashedTaskNotFound()
    row = taken[0]
    row.pop("deleted_at")
    now = utcnow()
    row.update(version=row["version"] + 1, updated_at=now)
    restored = await connection.fetch(_PUT_BACK, new_values(row))
    await tag_task(connection, user_id, task_id, row["tags"])
    await record_changes(connection, user_id, [task_id], removed=False, now=now)
    await connection.commit()
    count_task_operation("restore")
    record_event("task restored", task_id=str(task_id))
    return cast(TaskRecord, restored[0])


async def purge_task(*, connection: Connection, user_id: str, task_id: uuid.UUID, retention: timedelta) -> None:
    """One task out of the trash, for good."""
    params = {"owner_id": user_id, "task_id": task_id, "kept_since": _kept_since(retention)}
    if await connection.execute(_PURGE, params) == 0:
        raise TrashedTaskNotFound()
    count_task_operation("purge")
    record_event("task purged", task_id=str(task_id))


async def empty_trash(*, connection: Connection, user_id: str) -> int:
    purged = await connection.execute(_EMPTY, {"owner_id": user_id})
    count_task_operation("empty_trash")
    record_event("trash emptied", count=purged)
    return purged


async def purge_expired(*, connection: Connection, retention: timedelta) -> int:
    """Deletes every user's trashed tasks older than the retention, a short transaction per batch."""
    return await delete_in_batches(
        connection, _PURGE_EXPIRED, lambda: {"kept_since": _kept_since(retention)}, PURGE_BATCH
    )
