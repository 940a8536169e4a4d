"""Every task operation, and the only code that builds task queries.

Each statement carries the owner's `user_id` in its WHERE clause (or its VALUES, for an insert), so a
task outside the caller's collection is simply not found. Writes are single statements that return
the new row, committed before the function returns: a response is only sent for stored data.

Statements are built once, with bound parameters, so the database layer can compile each one once
(see `src.core.database.Connection`); a request only binds its values.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Delete,
    Select,
    Table,
    Update,
    bindparam,
    case,
    delete,
    func,
    insert,
    not_,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from uuid_utils.compat import uuid7

from src.core.database import Connection
from src.core.errors import NotFoundError, PreconditionFailedError
from src.core.logging import record_event
from src.core.metrics import count_task_operation
from src.models.task import (
    Task,
    TaskCreate,
    TaskPageRecord,
    TaskPatch,
    TaskPublic,
    TaskRecord,
    TaskReplace,
    TaskSort,
    TaskStatusFilter,
)
from src.services import idempotency
from src.services.pagination import PagePosition, decode_cursor, encode_cursor

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


_USER_ID = bindparam("owner_id", type_=tasks.c.user_id.type)
_TASK_ID = bindparam("task_id", type_=tasks.c.id.type)
_NOW = bindparam("now", type_=tasks.c.updated_at.type)
_OWNED: ColumnElement[bool] = (tasks.c.user_id == _USER_ID) & (tasks.c.id == _TASK_ID)

# What a task read or write returns: TaskPublic's fields, named one by one, so a column added to the table
# later (a deletion time, a search column) reaches no client until TaskPublic lists it.
_PUBLIC_COLUMNS = tuple(tasks.c[name] for name in TaskPublic.model_fields)
_GET = select(*_PUBLIC_COLUMNS).where(_OWNED)
_VERSION_OF = select(tasks.c.version).where(_OWNED)
# In INSERT and UPDATE statements a bound parameter may not share a column's name: hence `new_<column>`.
_INSERT_PARAMETERS = {column.name: f"new_{column.name}" for column in tasks.c}
_INSERT = insert(tasks).values(
    {name: bindparam(parameter, type_=tasks.c[name].type) for name, parameter in _INSERT_PARAMETERS.items()}
)


@cache
def _list_statement(sort: TaskSort, status: TaskStatusFilter, after_cursor: bool) -> Select[Any]:
    column_name, descending = _SORT_COLUMNS[sort]
    sort_column = tasks.c[column_name]
    statement = select(*_PUBLIC_COLUMNS).where(tasks.c.user_id == _USER_ID)
    if status is not TaskStatusFilter.ALL:
        statement = statement.where(tasks.c.completed == bindparam("completed", type_=tasks.c.completed.type))
    if after_cursor:
        position = tuple_(sort_column, tasks.c.id)
        boundary = tuple_(bindparam("after_key", type_=sort_column.type), bindparam("after_id", type_=tasks.c.id.type))
        statement = statement.where(position < boundary if descending else position > boundary)
    order = (sort_column.desc(), tasks.c.id.desc()) if descending else (sort_column.asc(), tasks.c.id.asc())
    return statement.order_by(*order).limit(bindparam("limit"))


def _version_slots(expected_versions: Versions) -> int:
    """How many `version IN (...)` placeholders a write's If-Match takes (0: no precondition). Lists come in
    a few sizes (1, 2, 4, ... up to what a header's length allows), so a few statements serve every list."""
    if expected_versions is None:
        return 0
    return 1 << max(len(expected_versions) - 1, 0).bit_length()


def _precondition(expected_versions: Versions) -> dict[str, int]:
    """The If-Match versions as the statement's parameters: the list padded with its last version to fill
    the slots, or 0, which no task has, when no version can match."""
    if expected_versions is None:
        return {}
    versions = sorted(expected_versions) or [0]
    return {
        f"if_match_{slot}": versions[min(slot, len(versions) - 1)] for slot in range(_version_slots(expected_versions))
    }


def _owned(version_slots: int) -> ColumnElement[bool]:
    if not version_slots:
        return _OWNED
    return _OWNED & or_(
        *(tasks.c.version == bindparam(f"if_match_{slot}", type_=tasks.c.version.type) for slot in range(version_slots))
    )


@cache
def _update_statement(fields: frozenset[str], completed: bool | None, version_slots: int) -> Update:
    """UPDATE ... SET the given fields, `updated_at` and `version + 1` ... RETURNING the task."""
    values: dict[str, Any] = {name: bindparam(f"new_{name}", type_=tasks.c[name].type) for name in fields}
    if completed is not None:
        # completed_at keeps its first value while the task stays completed, and clears when it reopens.
        values["completed"] = completed
        values["completed_at"] = func.coalesce(tasks.c.completed_at, _NOW) if completed else None
    return _changing(values, version_slots)


@cache
def _toggle_statement(version_slots: int) -> Update:
    """Flips `completed` in the database, so concurrent toggles each apply and none is lost."""
    return _changing(
        {"completed": not_(tasks.c.completed), "completed_at": case((tasks.c.completed, None), else_=_NOW)},
        version_slots,
    )


def _changing(values: dict[str, Any], version_slots: int) -> Update:
    return (
        update(tasks)
        .where(_owned(version_slots))
        .values(**values, updated_at=_NOW, version=tasks.c.version + 1)
        .returning(*_PUBLIC_COLUMNS)
    )


@cache
def _delete_statement(version_slots: int) -> Delete:
    return delete(tasks).where(_owned(version_slots))


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CreatedTask:
    task: TaskRecord
    replayed: bool


async def create_task(
    *,
    connection: Connection,
    user_id: str,
    data: TaskCreate,
    idempotency_key: str | None = None,
    idempotency_retention: timedelta = timedelta(days=1),
) -> CreatedTask:
    """Creates the task, or with an idempotency key already used for the same body, replays the first
    answer instead (see services/idempotency.py)."""
    if idempotency_key is None:
        task = await _insert_task(connection=connection, user_id=user_id, data=data)
        await connection.commit()
        return _created(task)

    request_fingerprint = idempotency.fingerprint(data)
    now = _utcnow()
    await connection.begin()
    await idempotency.claim(connection=connection, user_id=user_id, key=idempotency_key)
    earlier = await idempotency.stored_response(connection=connection, user_id=user_id, key=idempotency_key, now=now)
    if earlier is None:
        try:
            task = await _insert_task(connection=connection, user_id=user_id, data=data)
            await idempotency.remember(
                connection=connection,
                user_id=user_id,
                key=idempotency_key,
                request_fingerprint=request_fingerprint,
                task=task,
                now=now,
                retention=idempotency_retention,
            )
            await connection.commit()
        except IntegrityError:
            # Another request stored this key first (possible where there is no advisory lock).
            await connection.rollback()
            earlier = await idempotency.stored_response(
                connection=connection, user_id=user_id, key=idempotency_key, now=now
            )
            if earlier is None:
                raise
        else:
            return _created(task)
    await connection.rollback()
    count_task_operation("create_replayed")
    return CreatedTask(task=idempotency.replay(earlier, request_fingerprint), replayed=True)


def _created(task: TaskRecord) -> CreatedTask:
    count_task_operation("create")
    record_event("task created", task_id=str(task["id"]))
    return CreatedTask(task=task, replayed=False)


async def _insert_task(*, connection: Connection, user_id: str, data: TaskCreate) -> TaskRecord:
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
    await connection.execute(_INSERT, {_INSERT_PARAMETERS[name]: value for name, value in task.items()})
    return task


async def get_task(*, connection: Connection, user_id: str, task_id: uuid.UUID) -> TaskRecord:
    rows = await connection.fetch(_GET, {"owner_id": user_id, "task_id": task_id})
    if not rows:
        raise TaskNotFound()
    return cast(TaskRecord, rows[0])


async def list_tasks(
    *,
    connection: Connection,
    user_id: str,
    status: TaskStatusFilter,
    sort: TaskSort,
    limit: int,
    cursor: str | None,
    cursor_key: bytes,
) -> TaskPageRecord:
    """One page in `sort` order, found by keyset (no OFFSET, no COUNT): one more row than asked says
    whether another page follows."""
    params: dict[str, Any] = {"owner_id": user_id, "limit": limit + 1}
    if status is not TaskStatusFilter.ALL:
        params["completed"] = status is TaskStatusFilter.COMPLETED
    if cursor is not None:
        after = decode_cursor(cursor, key=cursor_key, user_id=user_id, sort=sort, status=status)
        params.update(after_key=after.sort_key, after_id=after.task_id)
    rows = await connection.fetch(_list_statement(sort, status, cursor is not None), params)
    items = cast(list[TaskRecord], rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        column_name, _descending = _SORT_COLUMNS[sort]
        position = PagePosition(sort_key=last[column_name], task_id=last["id"])  # type: ignore[literal-required,arg-type]
        next_cursor = encode_cursor(position, key=cursor_key, user_id=user_id, sort=sort, status=status)
    return TaskPageRecord(items=items, next_cursor=next_cursor)


async def replace_task(
    *,
    connection: Connection,
    user_id: str,
    task_id: uuid.UUID,
    data: TaskReplace,
    expected_versions: Versions = None,
) -> TaskRecord:
    statement = _update_statement(
        frozenset({"title", "description"}), data.completed, _version_slots(expected_versions)
    )
    values = {"new_title": data.title, "new_description": data.description}
    task = await _apply_update(connection, statement, user_id, task_id, values, expected_versions)
    count_task_operation("replace")
    record_event("task replaced", task_id=str(task_id))
    return task


async def patch_task(
    *,
    connection: Connection,
    user_id: str,
    task_id: uuid.UUID,
    data: TaskPatch,
    expected_versions: Versions = None,
) -> TaskRecord:
    fields = data.model_dump(exclude_unset=True)
    if not fields:
        task = await get_task(connection=connection, user_id=user_id, task_id=task_id)
        if expected_versions is not None and task["version"] not in expected_versions:
            raise TaskVersionMismatch()
        return task
    completed = fields.pop("completed", None)
    statement = _update_statement(frozenset(fields), completed, _version_slots(expected_versions))
    values = {f"new_{name}": value for name, value in fields.items()}
    task = await _apply_update(connection, statement, user_id, task_id, values, expected_versions)
    count_task_operation("update")
    changed = sorted([*fields, *(["completed"] if completed is not None else [])])
    record_event("task updated", task_id=str(task_id), fields=changed)
    return task


async def toggle_completion(
    *, connection: Connection, user_id: str, task_id: uuid.UUID, expected_versions: Versions = None
) -> TaskRecord:
    statement = _toggle_statement(_version_slots(expected_versions))
    task = await _apply_update(connection, statement, user_id, task_id, {}, expected_versions)
    count_task_operation("toggle")
    record_event("task toggled", task_id=str(task_id), completed=task["completed"])
    return task


async def delete_task(
    *, connection: Connection, user_id: str, task_id: uuid.UUID, expected_versions: Versions = None
) -> None:
    params = {"owner_id": user_id, "task_id": task_id, **_precondition(expected_versions)}
    if await connection.execute(_delete_statement(_version_slots(expected_versions)), params) == 0:
        raise await _why_unchanged(connection=connection, user_id=user_id, task_id=task_id)
    await connection.commit()
    count_task_operation("delete")
    record_event("task deleted", task_id=str(task_id))


async def _apply_update(
    connection: Connection,
    statement: Update,
    user_id: str,
    task_id: uuid.UUID,
    values: dict[str, Any],
    expected_versions: Versions,
) -> TaskRecord:
    """One UPDATE ... RETURNING: the owner check, the version precondition and the write are atomic."""
    params = {**values, "owner_id": user_id, "task_id": task_id, "now": _utcnow(), **_precondition(expected_versions)}
    rows = await connection.fetch(statement, params)
    if not rows:
        raise await _why_unchanged(connection=connection, user_id=user_id, task_id=task_id)
    await connection.commit()
    return cast(TaskRecord, rows[0])


async def _why_unchanged(*, connection: Connection, user_id: str, task_id: uuid.UUID) -> Exception:
    """After a conditional write matched no row: the task is gone (404) or at another version (412)."""
    exists = await connection.fetch(_VERSION_OF, {"owner_id": user_id, "task_id": task_id})
    return TaskNotFound() if not exists else TaskVersionMismatch()
