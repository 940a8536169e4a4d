"""Every operation on live tasks; with src.services.task_listing (the list query), trash_service and
sync_service, the only code that builds task queries.

Each statement carries the owner's `user_id` in its WHERE clause (or its VALUES, for an insert), so a
task outside the caller's collection is simply not found. A write is one statement that returns the new
row and records its change (sync_service.write_recorded), then the task's tag rows when its tags change,
all committed before the function returns: a response is only sent for stored data.

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
    Insert,
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
    update,
)
from sqlalchemy.exc import IntegrityError
from uuid_utils.compat import uuid7

from src.core.database import Connection
from src.core.errors import NotFoundError, PreconditionFailedError
from src.core.logging import record_event
from src.core.metrics import count_task_operation
from src.models.task import (
    PRIORITY_RANKS,
    TaskCreate,
    TaskPageRecord,
    TaskPatch,
    TaskPriority,
    TaskRecord,
    TaskReplace,
    TaskSort,
    TaskStatusFilter,
    fold,
)
from src.services import idempotency
from src.services.pagination import ListShape, PagePosition, SortKey, decode_cursor, encode_cursor
from src.services.sync_service import write_recorded, writes_with_its_change
from src.services.task_listing import (
    NO_FILTERS,
    OWNER_ID,
    PUBLIC_COLUMNS,
    SORT_COLUMNS,
    Segment,
    TaskFilters,
    list_statement,
    segments,
    task_tags,
    tasks,
)

# The versions a conditional write accepts (from If-Match); None means no precondition.
Versions = frozenset[int] | None


class TaskNotFound(NotFoundError):
    def __init__(self) -> None:
        super().__init__("no task with this id in this user's list")


class TaskVersionMismatch(PreconditionFailedError):
    def __init__(self) -> None:
        super().__init__("the task has changed since the version you sent in If-Match: get it again, then retry")


_USER_ID = OWNER_ID
_TASK_ID = bindparam("task_id", type_=tasks.c.id.type)
_NOW = bindparam("now", type_=tasks.c.updated_at.type)


def owned(table: Table, version_slots: int = 0) -> ColumnElement[bool]:
    """The task `task_id` of the user `owner_id` in `table` (tasks, or the trash), at one of the If-Match
    versions when there are slots for them."""
    condition = (table.c.user_id == _USER_ID) & (table.c.id == _TASK_ID)
    if not version_slots:
        return condition
    return condition & or_(
        *(table.c.version == bindparam(f"if_match_{slot}", type_=table.c.version.type) for slot in range(version_slots))
    )


_GET = select(*PUBLIC_COLUMNS).where(owned(tasks))
_VERSION_OF = select(tasks.c.version).where(owned(tasks))


# In INSERT and UPDATE statements a bound parameter may not share a column's name: hence `new_<column>`.
def insert_every_column(table: Table) -> Insert:
    """INSERT INTO `table` a value for each column, bound as `new_<column>` (see new_values)."""
    return insert(table).values({column.name: bindparam(f"new_{column.name}", type_=column.type) for column in table.c})


def new_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields as the parameters of an INSERT or UPDATE: `new_<column>`."""
    return {f"new_{name}": value for name, value in fields.items()}


INSERT_TASK = insert_every_column(tasks)
_INSERT_RETURNING_OWNER = INSERT_TASK.returning(tasks.c.id, tasks.c.user_id)
_INSERT_PARAMETERS = [(f"new_{column.name}", column.name) for column in tasks.columns]
_UNTAG = delete(task_tags).where(task_tags.c.task_id == _TASK_ID, task_tags.c.user_id == _USER_ID)
_TAG_SUMMARY = (
    select(task_tags.c.tag_key, task_tags.c.tag, func.count().label("tasks"))
    .where(task_tags.c.user_id == _USER_ID)
    .group_by(task_tags.c.tag_key, task_tags.c.tag)
)


@cache
def _tagging_statement(count: int) -> Insert:
    """INSERT the rows of `count` tags of one task, in one statement."""
    return insert(task_tags).values(
        [
            {
                "task_id": _TASK_ID,
                "user_id": _USER_ID,
                "tag_key": bindparam(f"tag_key_{index}", type_=task_tags.c.tag_key.type),
                "tag": bindparam(f"tag_{index}", type_=task_tags.c.tag.type),
            }
            for index in range(count)
        ]
    )


def _stored(fields: dict[str, Any]) -> dict[str, Any]:
    """A task's fields as the table stores them: the priority's rank, and the folded text that searches
    compare beside each title and description."""
    stored = dict(fields)
    if "priority" in fields:
        stored["priority"] = PRIORITY_RANKS[fields["priority"]]
    if "title" in fields:
        stored["title_folded"] = fold(fields["title"])
    if "description" in fields:
        stored["description_folded"] = None if fields["description"] is None else fold(fields["description"])
    if "tags" in fields:
        stored["tag_keys"] = [fold(tag) for tag in fields["tags"]]
    return stored


def if_match_slots(expected_versions: Versions) -> int:
    """How many `version IN (...)` placeholders a write's If-Match takes (0: no precondition). Lists come in
    a few sizes (1, 2, 4, ... up to what a header's length allows), so a few statements serve every list."""
    if expected_versions is None:
        return 0
    return 1 << max(len(expected_versions) - 1, 0).bit_length()


def precondition(expected_versions: Versions) -> dict[str, int]:
    """The If-Match versions as the statement's parameters: the list padded with its last version to fill
    the slots, or 0, which no task has, when no version can match."""
    if expected_versions is None:
        return {}
    versions = sorted(expected_versions) or [0]
    return {
        f"if_match_{slot}": versions[min(slot, len(versions) - 1)] for slot in range(if_match_slots(expected_versions))
    }


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
        .where(owned(tasks, version_slots))
        .values(**values, updated_at=_NOW, version=tasks.c.version + 1)
        .returning(*PUBLIC_COLUMNS)
    )


def utcnow() -> datetime:
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
        if data.tags or not writes_with_its_change(connection):
            await connection.begin()  # the task, its tags and its change, or none of them
        task = await _insert_task(connection=connection, user_id=user_id, data=data)
        await connection.commit()
        return _created(task)

    request_fingerprint = idempotency.fingerprint(data)
    now = utcnow()
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
    now = utcnow()
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
        due_at=data.due_at,
        priority=data.priority.value,
        tags=data.tags,
    )
    stored = _stored({**task, "priority": data.priority})
    params = {parameter: stored[name] for parameter, name in _INSERT_PARAMETERS}
    await write_recorded(connection, _INSERT_RETURNING_OWNER, params, now=now, new_tasks=True)
    await tag_task(connection, user_id, task["id"], data.tags)
    return task


async def tag_task(connection: Connection, user_id: str, task_id: uuid.UUID | str, tags: list[str]) -> None:
    if tags:
        params: dict[str, Any] = {"owner_id": user_id, "task_id": task_id}
        for index, tag in enumerate(tags):
            params.update({f"tag_key_{index}": fold(tag), f"tag_{index}": tag})
        await connection.execute(_tagging_statement(len(tags)), params)


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
    filters: TaskFilters = NO_FILTERS,
) -> TaskPageRecord:
    """One page in `sort` order, found by keyset (no OFFSET, no COUNT): one more row than asked says
    whether another page follows. A due-date order reads the dated tasks, then the undated ones."""
    shape = ListShape(sort, status, filters.digest())
    params: dict[str, Any] = {"owner_id": user_id, **filters.parameters()}
    if status is not TaskStatusFilter.ALL:
        params["completed"] = status is TaskStatusFilter.COMPLETED
    ranges = segments(sort, filters)
    after: PagePosition | None = None
    if cursor is not None:
        after = decode_cursor(cursor, key=cursor_key, user_id=user_id, shape=shape)
        if after.sort_key is None:  # the previous page ended among the undated tasks
            ranges = ranges[-1:] if ranges[-1] is Segment.UNDATED else ()
    rows: list[dict[str, Any]] = []
    for segment in ranges:
        continues = after is not None and (segment is Segment.UNDATED) == (after.sort_key is None)
        if continues and after is not None:
            params.update(after_key=after.sort_key, after_id=after.task_id)
        params["limit"] = limit + 1 - len(rows)
        statement = list_statement(connection.dialect_name, sort, status, filters.shape, segment, continues)
        rows += await connection.fetch(statement, params)
        if len(rows) > limit:
            break
    items = cast(list[TaskRecord], rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        position = PagePosition(sort_key=_sort_key(sort, last), task_id=last["id"])  # type: ignore[arg-type]
        next_cursor = encode_cursor(position, key=cursor_key, user_id=user_id, shape=shape)
    return TaskPageRecord(items=items, next_cursor=next_cursor)


def _sort_key(sort: TaskSort, task: TaskRecord) -> SortKey:
    column_name, _descending = SORT_COLUMNS[sort]
    if column_name == "priority":
        return PRIORITY_RANKS[TaskPriority(task["priority"])]
    return task[column_name]  # type: ignore[literal-required,no-any-return]


async def tag_summary(*, connection: Connection, user_id: str) -> list[dict[str, Any]]:
    """Every tag on the user's tasks with how many carry it, most used first, then by name; spellings that
    differ only in case are one tag, shown as most of its tasks spell it."""
    tags: dict[str, dict[str, int]] = {}
    for row in await connection.fetch(_TAG_SUMMARY, {"owner_id": user_id}):
        tags.setdefault(row["tag_key"], {})[row["tag"]] = row["tasks"]
    summary = [
        {"tag": min(spellings, key=lambda spelling: (-spellings[spelling], spelling)), "count": sum(spellings.values())}
        for spellings in tags.values()
    ]
    return sorted(summary, key=lambda item: (-item["count"], fold(item["tag"]), item["tag"]))


async def replace_task(
    *,
    connection: Connection,
    user_id: str,
    task_id: uuid.UUID,
    data: TaskReplace,
    expected_versions: Versions = None,
) -> TaskRecord:
    fields = data.model_dump(exclude={"completed"})
    task = await _update(connection, user_id, task_id, fields, data.completed, expected_versions)
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
    fields = {name: getattr(data, name) for name in data.model_fields_set}
    if not fields:
        task = await get_task(connection=connection, user_id=user_id, task_id=task_id)
        if expected_versions is not None and task["version"] not in expected_versions:
            raise TaskVersionMismatch()
        return task
    completed = fields.pop("completed", None)
    task = await _update(connection, user_id, task_id, fields, completed, expected_versions)
    count_task_operation("update")
    changed = sorted([*fields, *(["completed"] if completed is not None else [])])
    record_event("task updated", task_id=str(task_id), fields=changed)
    return task


async def _update(
    connection: Connection,
    user_id: str,
    task_id: uuid.UUID,
    fields: dict[str, Any],
    completed: bool | None,
    expected_versions: Versions,
) -> TaskRecord:
    """Writes the given fields (and the completion); new tags replace the old ones in the same transaction."""
    stored = _stored(fields)
    statement = _update_statement(frozenset(stored), completed, if_match_slots(expected_versions))
    values = new_values(stored)
    return await _apply_update(connection, statement, user_id, task_id, values, expected_versions, fields.get("tags"))


async def toggle_completion(
    *, connection: Connection, user_id: str, task_id: uuid.UUID, expected_versions: Versions = None
) -> TaskRecord:
    statement = _toggle_statement(if_match_slots(expected_versions))
    task = await _apply_update(connection, statement, user_id, task_id, {}, expected_versions)
    count_task_operation("toggle")
    record_event("task toggled", task_id=str(task_id), completed=task["completed"])
    return task


async def _apply_update(
    connection: Connection,
    statement: Update,
    user_id: str,
    task_id: uuid.UUID,
    values: dict[str, Any],
    expected_versions: Versions,
    new_tags: list[str] | None = None,
) -> TaskRecord:
    """One UPDATE ... RETURNING (the owner check, the version precondition and the write are atomic) with
    its change (one statement on PostgreSQL), and the task's new tags if any, all or nothing."""
    now = utcnow()
    params = {**values, "owner_id": user_id, "task_id": task_id, "now": now, **precondition(expected_versions)}
    in_transaction = new_tags is not None or not writes_with_its_change(connection)
    if in_transaction:
        await connection.begin()
    rows = await write_recorded(connection, statement, params, now=now)
    if not rows:
        unchanged = await why_unchanged(
            connection=connection, user_id=user_id, task_id=task_id, expected_versions=expected_versions
        )
        await connection.rollback()
        raise unchanged
    if new_tags is not None:
        await connection.execute(_UNTAG, {"owner_id": user_id, "task_id": task_id})
        await tag_task(connection, user_id, task_id, new_tags)
    await connection.commit()
    return cast(TaskRecord, rows[0])


async def why_unchanged(
    *, connection: Connection, user_id: str, task_id: uuid.UUID, expected_versions: Versions
) -> Exception:
    """After a write matched no row: the task is gone (404) or at another version (412).

    Without If-Match only the first can be true. The task may be back by now (restored, or moved out and
    back by another request while the write waited for its row), but the write found it gone: 404, never a
    412 for a precondition the client did not send."""
    if expected_versions is None:
        return TaskNotFound()
    exists = await connection.fetch(_VERSION_OF, {"owner_id": user_id, "task_id": task_id})
    return TaskNotFound() if not exists else TaskVersionMismatch()
