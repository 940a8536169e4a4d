"""Every task operation, and the only code that builds task queries.

Each statement carries the owner's `user_id` in its WHERE clause (or its VALUES, for an insert), so a
task outside the caller's collection is simply not found. Writes are single statements that return
the new row, and each function commits before it returns: a response is only sent for stored data.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Row,
    Table,
    case,
    delete,
    func,
    insert,
    literal,
    not_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from src.core.database import begin_transaction
from src.core.errors import NotFoundError, PreconditionFailedError
from src.core.metrics import TASK_OPERATIONS
from src.models.task import (
    Task,
    TaskCreate,
    TaskPageRecord,
    TaskPatch,
    TaskRecord,
    TaskReplace,
    TaskSort,
    TaskStatusFilter,
)
from src.services import idempotency
from src.services.pagination import PagePosition, decode_cursor, encode_cursor

logger = logging.getLogger(__name__)

tasks: Table = Task.__table__  # type: ignore[attr-defined]

# The versions a conditional write accepts (from If-Match); None means no precondition.
Versions = frozenset[int] | None

_SORT_COLUMNS: dict[TaskSort, tuple[str, bool]] = {
    TaskSort.NEWEST_FIRST: ("created_at", True),
    TaskSort.OLDEST_FIRST: ("created_at", False),
    TaskSort.RECENTLY_UPDATED_FIRST: ("updated_at", True),
    TaskSort.LEAST_RECENTLY_UPDATED_FIRST: ("updated_at", False),
    TaskSort.TITLE_ASCENDING: ("title", False),
    TaskSort.TITLE_DESCENDING: ("title", True),
}


class TaskNotFound(NotFoundError):
    def __init__(self) -> None:
        super().__init__("no task with this id in this user's list")


class TaskVersionMismatch(PreconditionFailedError):
    def __init__(self) -> None:
        super().__init__("the task has changed since the version you sent in If-Match: get it again, then retry")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _owned(user_id: str, task_id: uuid.UUID) -> ColumnElement[bool]:
    return (tasks.c.user_id == user_id) & (tasks.c.id == task_id)


def _owned_at_version(user_id: str, task_id: uuid.UUID, expected_versions: Versions) -> ColumnElement[bool]:
    condition = _owned(user_id, task_id)
    if expected_versions is not None:
        condition = condition & tasks.c.version.in_(expected_versions)
    return condition


def _record(row: Row[Any]) -> TaskRecord:
    return cast(TaskRecord, row._asdict())


@dataclass(frozen=True, slots=True)
class CreatedTask:
    task: TaskRecord
    replayed: bool


async def create_task(
    *,
    session: AsyncSession,
    user_id: str,
    data: TaskCreate,
    idempotency_key: str | None = None,
    idempotency_retention: timedelta = timedelta(days=1),
) -> CreatedTask:
    """Creates the task, or with an idempotency key already used for the same body, replays the first
    answer instead (see services/idempotency.py)."""
    if idempotency_key is None:
        task = await _insert_task(session=session, user_id=user_id, data=data)
        await session.commit()
        return _created(task)

    request_fingerprint = idempotency.fingerprint(data)
    now = _utcnow()
    await begin_transaction(session)
    await idempotency.claim(session=session, user_id=user_id, key=idempotency_key)
    earlier = await idempotency.stored_response(session=session, user_id=user_id, key=idempotency_key, now=now)
    if earlier is None:
        try:
            task = await _insert_task(session=session, user_id=user_id, data=data)
            await idempotency.remember(
                session=session,
                user_id=user_id,
                key=idempotency_key,
                request_fingerprint=request_fingerprint,
                task=task,
                now=now,
                retention=idempotency_retention,
            )
            await session.commit()
        except IntegrityError:
            # Another request stored this key first (possible where there is no advisory lock).
            await session.rollback()
            earlier = await idempotency.stored_response(session=session, user_id=user_id, key=idempotency_key, now=now)
            if earlier is None:
                raise
        else:
            return _created(task)
    await session.rollback()
    TASK_OPERATIONS.labels("create_replayed").inc()
    return CreatedTask(task=idempotency.replay(earlier, request_fingerprint), replayed=True)


def _created(task: TaskRecord) -> CreatedTask:
    TASK_OPERATIONS.labels("create").inc()
    logger.info("task created", extra={"user_id": task["user_id"], "task_id": str(task["id"])})
    return CreatedTask(task=task, replayed=False)


async def _insert_task(*, session: AsyncSession, user_id: str, data: TaskCreate) -> TaskRecord:
    now = _utcnow()
    task = TaskRecord(
        title=data.title,
        description=data.description,
        completed=data.completed,
        id=uuid7(),
        user_id=user_id,
        completed_at=now if data.completed else None,
        created_at=now,
        updated_at=now,
        version=1,
    )
    await session.execute(insert(tasks).values(dict(task)))
    return task


async def get_task(*, session: AsyncSession, user_id: str, task_id: uuid.UUID) -> TaskRecord:
    row = (await session.execute(select(tasks).where(_owned(user_id, task_id)))).one_or_none()
    if row is None:
        raise TaskNotFound()
    return _record(row)


async def list_tasks(
    *,
    session: AsyncSession,
    user_id: str,
    status: TaskStatusFilter,
    sort: TaskSort,
    limit: int,
    cursor: str | None,
    cursor_key: bytes,
) -> TaskPageRecord:
    """One page in `sort` order, found by keyset (no OFFSET, no COUNT): one more row than asked says
    whether another page follows."""
    column_name, descending = _SORT_COLUMNS[sort]
    sort_column = tasks.c[column_name]
    statement = select(tasks).where(tasks.c.user_id == user_id)
    if status is not TaskStatusFilter.ALL:
        statement = statement.where(tasks.c.completed == (status is TaskStatusFilter.COMPLETED))
    if cursor is not None:
        after = decode_cursor(cursor, key=cursor_key, user_id=user_id, sort=sort, status=status)
        position = tuple_(sort_column, tasks.c.id)
        boundary = tuple_(
            literal(after.sort_key, sort_column.type),
            literal(after.task_id, tasks.c.id.type),
        )
        statement = statement.where(position < boundary if descending else position > boundary)
    if descending:
        statement = statement.order_by(sort_column.desc(), tasks.c.id.desc())
    else:
        statement = statement.order_by(sort_column.asc(), tasks.c.id.asc())
    rows: Sequence[Row[Any]] = (await session.execute(statement.limit(limit + 1))).all()
    items = [_record(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        position_of_last = PagePosition(sort_key=getattr(last, column_name), task_id=last.id)
        next_cursor = encode_cursor(position_of_last, key=cursor_key, user_id=user_id, sort=sort, status=status)
    return TaskPageRecord(items=items, next_cursor=next_cursor)


def _completion_values(completed: bool, now: datetime) -> dict[str, Any]:
    # completed_at keeps its first value while the task stays completed, and clears when it reopens.
    completed_at = func.coalesce(tasks.c.completed_at, now) if completed else None
    return {"completed": completed, "completed_at": completed_at}


async def replace_task(
    *,
    session: AsyncSession,
    user_id: str,
    task_id: uuid.UUID,
    data: TaskReplace,
    expected_versions: Versions = None,
) -> TaskRecord:
    now = _utcnow()
    changes = {
        "title": data.title,
        "description": data.description,
        **_completion_values(data.completed, now),
    }
    task = await _apply_update(
        session=session, user_id=user_id, task_id=task_id, changes=changes, now=now, expected_versions=expected_versions
    )
    TASK_OPERATIONS.labels("replace").inc()
    logger.info("task replaced", extra={"user_id": user_id, "task_id": str(task_id)})
    return task


async def patch_task(
    *,
    session: AsyncSession,
    user_id: str,
    task_id: uuid.UUID,
    data: TaskPatch,
    expected_versions: Versions = None,
) -> TaskRecord:
    fields = data.model_dump(exclude_unset=True)
    if not fields:
        task = await get_task(session=session, user_id=user_id, task_id=task_id)
        if expected_versions is not None and task["version"] not in expected_versions:
            raise TaskVersionMismatch()
        return task
    now = _utcnow()
    changes = {name: value for name, value in fields.items() if name != "completed"}
    if "completed" in fields:
        changes.update(_completion_values(fields["completed"], now))
    task = await _apply_update(
        session=session, user_id=user_id, task_id=task_id, changes=changes, now=now, expected_versions=expected_versions
    )
    TASK_OPERATIONS.labels("update").inc()
    logger.info(
        "task updated",
        extra={"user_id": user_id, "task_id": str(task_id), "fields": sorted(fields)},
    )
    return task


async def toggle_completion(
    *, session: AsyncSession, user_id: str, task_id: uuid.UUID, expected_versions: Versions = None
) -> TaskRecord:
    """Flip `completed` in one statement, so concurrent toggles each apply and none is lost."""
    now = _utcnow()
    changes = {
        "completed": not_(tasks.c.completed),
        "completed_at": case((tasks.c.completed, None), else_=now),
    }
    task = await _apply_update(
        session=session, user_id=user_id, task_id=task_id, changes=changes, now=now, expected_versions=expected_versions
    )
    TASK_OPERATIONS.labels("toggle").inc()
    logger.info(
        "task toggled",
        extra={
            "user_id": user_id,
            "task_id": str(task_id),
            "completed": task["completed"],
        },
    )
    return task


async def delete_task(
    *, session: AsyncSession, user_id: str, task_id: uuid.UUID, expected_versions: Versions = None
) -> None:
    statement = delete(tasks).where(_owned_at_version(user_id, task_id, expected_versions))
    result = await session.execute(statement)
    if result.rowcount == 0:  # type: ignore[attr-defined]
        await session.rollback()
        raise await _why_unchanged(session=session, user_id=user_id, task_id=task_id)
    await session.commit()
    TASK_OPERATIONS.labels("delete").inc()
    logger.info("task deleted", extra={"user_id": user_id, "task_id": str(task_id)})


async def _apply_update(
    *,
    session: AsyncSession,
    user_id: str,
    task_id: uuid.UUID,
    changes: dict[str, Any],
    now: datetime,
    expected_versions: Versions,
) -> TaskRecord:
    """One UPDATE ... RETURNING: the owner check, the version precondition and the write are atomic."""
    statement = (
        update(tasks)
        .where(_owned_at_version(user_id, task_id, expected_versions))
        .values(**changes, updated_at=now, version=tasks.c.version + 1)
        .returning(*tasks.c)
    )
    row = (await session.execute(statement)).one_or_none()
    if row is None:
        await session.rollback()
        raise await _why_unchanged(session=session, user_id=user_id, task_id=task_id)
    await session.commit()
    return _record(row)


async def _why_unchanged(*, session: AsyncSession, user_id: str, task_id: uuid.UUID) -> Exception:
    """After a conditional write matched no row: the task is gone (404) or at another version (412)."""
    exists = (await session.execute(select(tasks.c.version).where(_owned(user_id, task_id)))).first()
    return TaskNotFound() if exists is None else TaskVersionMismatch()
