"""The change feed: what changed in a user's tasks since a token, oldest change first.

Every write stamps each task it touched, in its own transaction, with the position of its change
(`task_changes`, one row per task, holding its latest change). A sync reads, in one statement (one
snapshot), the changes after its token's position, in order, and hands out the position of the last one
it returned as the next token. For nothing to be missed, no change may later commit at a position at or
below one a reader has already passed:

- On PostgreSQL the position is the writing transaction's id (`pg_current_xact_id()`), and a read stops
  below the oldest transaction still running (`pg_snapshot_xmin(pg_current_snapshot())`): every
  transaction below that has finished, and every one to come has a higher id. A write in flight during
  a read is at or above the bound, and comes in a later call. Writers never wait for each other.
- On SQLite, where one writer at a time commits, a change takes the user's next position
  (`max(seq) + 1`) inside its write transaction: positions commit in order.

Removals stay in `task_changes` for `SYNC_RETENTION_DAYS` (plus a day, for writes in flight and clocks a
little apart); a token older than the retention may have missed forgotten removals, and is refused with
410, so that the client starts again.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Executable,
    Insert,
    Select,
    and_,
    bindparam,
    delete,
    func,
    literal,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.selectable import HasCTE

from src.core.database import Connection, delete_in_batches
from src.core.errors import GoneError, InvalidInputError
from src.models.sync import TaskChange
from src.services.pagination import seal, unseal
from src.services.task_listing import OWNER_ID, public_columns, tasks

logger = logging.getLogger(__name__)

task_changes = TaskChange.__table__  # type: ignore[attr-defined]

# Removals are kept this much longer than tokens, for writes in flight and clocks a little apart.
REMOVAL_GRACE = timedelta(days=1)
PURGE_BATCH = 500
_NO_TASK = uuid.UUID(int=0)
# The oldest transaction id still running: every change below it has committed (or never will).
_SETTLED_BELOW: ColumnElement[int] = literal_column("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


class InvalidSyncToken(InvalidInputError):
    def __init__(self) -> None:
        super().__init__(
            "since is not a token this service gave for this user: pass the next_token of an earlier answer unchanged",
            loc=("query", "since"),
            error_type="invalid_token",
        )


class ResyncRequired(GoneError):
    def __init__(self, retention_days: int) -> None:
        super().__init__(
            f"the token is older than {retention_days} days, and deletions since may be forgotten: "
            "sync again from the start, without `since`"
        )


@dataclass(frozen=True, slots=True)
class SyncToken:
    """A position in the user's changes (the last change returned: its number and task id), and when the
    token was given."""

    seq: int
    task_id: uuid.UUID
    issued_at: datetime


def encode_token(token: SyncToken, *, key: bytes, user_id: str) -> str:
    payload = {"k": "sync", "s": token.seq, "i": token.task_id.hex, "t": int(token.issued_at.timestamp())}
    return seal(json.dumps(payload, separators=(",", ":")).encode(), key=key, user_id=user_id)


def decode_token(text: str, *, key: bytes, user_id: str) -> SyncToken:
    payload = unseal(text, key=key, user_id=user_id)
    if payload is None:
        raise InvalidSyncToken()
    try:
        fields = json.loads(payload)
        if fields["k"] != "sync" or type(fields["s"]) is not int or type(fields["t"]) is not int:
            raise InvalidSyncToken()
        issued_at = datetime.fromtimestamp(fields["t"], UTC)
        return SyncToken(seq=fields["s"], task_id=uuid.UUID(hex=fields["i"]), issued_at=issued_at)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, OSError):
        raise InvalidSyncToken() from None


def _position(dialect: str) -> ColumnElement[int]:
    if dialect == "postgresql":
        return literal_column("pg_current_xact_id()::text::bigint")
    following = func.coalesce(func.max(task_changes.c.seq), 0) + 1
    return select(following).where(task_changes.c.user_id == OWNER_ID).scalar_subquery()


@cache
def _record_change(dialect: str) -> Insert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(task_changes).values(
        user_id=OWNER_ID,
        task_id=bindparam("changed_task_id", type_=task_changes.c.task_id.type),
        seq=_position(dialect),
        deleted=bindparam("removed", type_=task_changes.c.deleted.type),
        changed_at=bindparam("changed_at", type_=task_changes.c.changed_at.type),
    )
    return _latest_wins(statement)


def _latest_wins(statement: postgresql.Insert | sqlite.Insert) -> Insert:
    """A task's row takes the change being recorded in place of the one it held."""
    return statement.on_conflict_do_update(
        index_elements=[task_changes.c.user_id, task_changes.c.task_id],
        set_={
            "seq": statement.excluded.seq,
            "deleted": statement.excluded.deleted,
            "changed_at": statement.excluded.changed_at,
        },
    )


async def record_changes(
    connection: Connection, user_id: str, task_ids: Sequence[uuid.UUID | str], *, removed: bool, now: datetime
) -> None:
    """Stamps each task with its change's position; called in the write's transaction, before its commit."""
    rows = [
        {"owner_id": user_id, "changed_task_id": task_id, "removed": removed, "changed_at": now} for task_id in task_ids
    ]
    if len(rows) == 1:
        await connection.execute(_record_change(connection.dialect_name), rows[0])
    elif rows:
        await connection.execute_many(_record_change(connection.dialect_name), rows)


@lru_cache(maxsize=256)
def _with_change(write: Executable, new_tasks: bool) -> Select[Any]:
    """PostgreSQL: `write` (which returns the rows it touched, with their `id` and `user_id`) and the change
    of each of those tasks, in one statement: `WITH written AS (<write>), recorded AS (INSERT INTO
    task_changes ... FROM written) SELECT * FROM written`, one round trip in autocommit."""
    written = cast(HasCTE, write).cte("written")
    change = postgresql.insert(task_changes).from_select(
        ["user_id", "task_id", "seq", "deleted", "changed_at"],
        select(
            written.c.user_id,
            written.c.id,
            _position("postgresql"),
            literal(False),
            bindparam("changed_at", type_=task_changes.c.changed_at.type),
        ),
    )
    # A task created here has no change yet: a plain INSERT, without the conflict check.
    recorded = change if new_tasks else _latest_wins(change)
    return select(*written.c).add_cte(recorded.cte("recorded"))


async def write_recorded(
    connection: Connection,
    write: Executable,
    params: dict[str, Any],
    *,
    now: datetime,
    new_tasks: bool = False,
) -> list[dict[str, Any]]:
    """Runs a write that creates or changes tasks and returns them (their `id` and `user_id` among the
    columns), and records their change: in the same statement where `writes_with_its_change`; elsewhere in
    the statement after it, in the transaction the caller began."""
    if writes_with_its_change(connection):
        return await connection.fetch(_with_change(write, new_tasks), {**params, "changed_at": now})
    rows = await connection.fetch(write, params)
    if rows:
        await record_changes(connection, rows[0]["user_id"], [row["id"] for row in rows], removed=False, now=now)
    return rows


def writes_with_its_change(connection: Connection) -> bool:
    """Whether a write and its change are one statement (PostgreSQL, with a data-modifying WITH), so that a
    write of one statement needs no transaction of its own."""
    return connection.dialect_name == "postgresql"


@cache
def _changes_statement(dialect: str, live_only: bool) -> Select[Any]:
    """The user's changes after a position, with each changed task's public fields (null when removed), in
    change order: a range of `ix_task_changes_user_id_seq_task_id`."""
    position = tuple_(task_changes.c.seq, task_changes.c.task_id)
    after = tuple_(
        bindparam("after_seq", type_=task_changes.c.seq.type),
        bindparam("after_task_id", type_=task_changes.c.task_id.type),
    )
    conditions = [task_changes.c.user_id == OWNER_ID, position > after]
    if dialect == "postgresql":
        conditions.append(task_changes.c.seq < _SETTLED_BELOW)
    if live_only:
        conditions.append(task_changes.c.deleted.is_(False))
    joined = task_changes.outerjoin(
        tasks, and_(tasks.c.user_id == task_changes.c.user_id, tasks.c.id == task_changes.c.task_id)
    )
    return (
        select(
            task_changes.c.seq.label("change_seq"),
            task_changes.c.task_id.label("changed_task_id"),
            task_changes.c.deleted.label("removed"),
            *public_columns(tasks),
        )
        .select_from(joined)
        .where(*conditions)
        .order_by(task_changes.c.seq, task_changes.c.task_id)
        .limit(bindparam("limit"))
    )


async def changes_since(
    *,
    connection: Connection,
    user_id: str,
    since: str | None,
    limit: int,
    token_key: bytes,
    retention: timedelta,
) -> dict[str, Any]:
    """Without `since`, the live tasks (a first sync); with it, every change after it. The next token
    continues after the last change returned."""
    now = datetime.now(UTC)
    after = SyncToken(seq=-1, task_id=_NO_TASK, issued_at=now)
    if since is not None:
        after = decode_token(since, key=token_key, user_id=user_id)
        if after.issued_at < now - retention:
            raise ResyncRequired(retention.days)
    params = {"owner_id": user_id, "after_seq": after.seq, "after_task_id": after.task_id, "limit": limit + 1}
    rows = await connection.fetch(_changes_statement(connection.dialect_name, since is None), params)
    page = rows[:limit]
    if page:
        after = SyncToken(seq=page[-1]["change_seq"], task_id=page[-1]["changed_task_id"], issued_at=now)
    changes = []
    for row in page:
        removed = row.pop("removed") or row["id"] is None
        del row["change_seq"]
        task_id = row.pop("changed_task_id")
        changes.append({"id": task_id, "deleted": removed, "task": None if removed else row})
    next_token = SyncToken(seq=after.seq, task_id=after.task_id, issued_at=now)
    return {
        "changes": changes,
        "next_token": encode_token(next_token, key=token_key, user_id=user_id),
        "has_more": len(rows) > limit,
    }


_PURGE_FORGOTTEN = delete(task_changes).where(
    tuple_(task_changes.c.user_id, task_changes.c.task_id).in_(
        select(task_changes.c.user_id, task_changes.c.task_id)
        .where(task_changes.c.deleted.is_(True), task_changes.c.changed_at < bindparam("forget_before"))
        .limit(PURGE_BATCH)
        .with_for_update(skip_locked=True)
    )
)


async def forget_old_removals(*, connection: Connection, retention: timedelta) -> int:
    """Deletes removals older than the retention (and its grace), a batch per statement."""
    return await delete_in_batches(
        connection,
        _PURGE_FORGOTTEN,
        lambda: {"forget_before": datetime.now(UTC) - retention - REMOVAL_GRACE},
        PURGE_BATCH,
    )
