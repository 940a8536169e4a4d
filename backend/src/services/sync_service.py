"""The change feed: what changed in a user's tasks since a token, oldest change first.

Every write records, in its own transaction and as the last thing before it commits, the number of its
change in the user's sequence (`sync_counters`), on each task it touched (`task_changes`, one row per
task, holding its latest change). Taking the user's counter row locks it until the commit, so a user's
changes commit in the order of their numbers: whoever reads a change numbered n also sees every change
numbered below n. A sync reads the changes after its token's number in one statement (one snapshot),
and its next token is the number of the last change it returned; a write that was in flight during
the read has a higher number and comes in a later call. Nothing is missed, whatever the timing.

The counter is taken last so that a transaction holding it waits for no other lock: writes never
deadlock on it. Removals stay in `task_changes` for `SYNC_RETENTION_DAYS` (plus a day for clocks and
transactions in flight); a token older than the retention may have missed forgotten removals, and is
refused with 410, so that the client starts again.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Insert, Select, and_, bindparam, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from src.core.database import Connection
from src.core.errors import GoneError, InvalidInputError
from src.models.sync import SyncCounter, TaskChange
from src.services.pagination import seal, unseal
from src.services.task_listing import OWNER_ID, public_columns, tasks

logger = logging.getLogger(__name__)

sync_counters = SyncCounter.__table__  # type: ignore[attr-defined]
task_changes = TaskChange.__table__  # type: ignore[attr-defined]

# Removals are kept this much longer than tokens, for writes in flight and clocks a little apart.
REMOVAL_GRACE = timedelta(days=1)
PURGE_BATCH = 500


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
    seq: int
    issued_at: datetime


def encode_token(token: SyncToken, *, key: bytes, user_id: str) -> str:
    payload = {"k": "sync", "s": token.seq, "t": int(token.issued_at.timestamp())}
    return seal(json.dumps(payload, separators=(",", ":")).encode(), key=key, user_id=user_id)


def decode_token(text: str, *, key: bytes, user_id: str) -> SyncToken:
    payload = unseal(text, key=key, user_id=user_id)
    if payload is None:
        raise InvalidSyncToken()
    try:
        fields = json.loads(payload)
        if fields["k"] != "sync" or type(fields["s"]) is not int or type(fields["t"]) is not int:
            raise InvalidSyncToken()
        return SyncToken(seq=fields["s"], issued_at=datetime.fromtimestamp(fields["t"], UTC))
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        raise InvalidSyncToken() from None


@cache
def _count_changes(dialect: str) -> Insert:
    """Adds `count` to the user's counter (creating it), giving the new value."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(sync_counters).values(user_id=OWNER_ID, seq=bindparam("count", type_=sync_counters.c.seq.type))
    return statement.on_conflict_do_update(
        index_elements=[sync_counters.c.user_id], set_={"seq": sync_counters.c.seq + statement.excluded.seq}
    ).returning(sync_counters.c.seq)


@cache
def _record_change(dialect: str) -> Insert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(task_changes).values(
        user_id=OWNER_ID,
        task_id=bindparam("changed_task_id", type_=task_changes.c.task_id.type),
        seq=bindparam("change_seq", type_=task_changes.c.seq.type),
        deleted=bindparam("removed", type_=task_changes.c.deleted.type),
        changed_at=bindparam("changed_at", type_=task_changes.c.changed_at.type),
    )
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
    """Numbers a change to each task in the user's sequence. Called in the write's transaction, last
    before its commit (see the module's docstring)."""
    if not task_ids:
        return
    counted = await connection.fetch(
        _count_changes(connection.dialect_name), {"owner_id": user_id, "count": len(task_ids)}
    )
    first = counted[0]["seq"] - len(task_ids) + 1
    rows = [
        {
            "owner_id": user_id,
            "changed_task_id": task_id,
            "change_seq": first + index,
            "removed": removed,
            "changed_at": now,
        }
        for index, task_id in enumerate(task_ids)
    ]
    if len(rows) == 1:
        await connection.execute(_record_change(connection.dialect_name), rows[0])
    else:
        await connection.execute_many(_record_change(connection.dialect_name), rows)


@cache
def _changes_statement(live_only: bool) -> Select[Any]:
    """The user's changes after `since`, with each changed task's public fields (null when removed), in
    change order: a range of `ix_task_changes_user_id_seq`."""
    conditions = [
        task_changes.c.user_id == OWNER_ID,
        task_changes.c.seq > bindparam("since", type_=task_changes.c.seq.type),
    ]
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
        .order_by(task_changes.c.seq)
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
    after = 0
    if since is not None:
        token = decode_token(since, key=token_key, user_id=user_id)
        if token.issued_at < now - retention:
            raise ResyncRequired(retention.days)
        after = token.seq
    rows = await connection.fetch(
        _changes_statement(since is None), {"owner_id": user_id, "since": after, "limit": limit + 1}
    )
    page = rows[:limit]
    last = page[-1]["change_seq"] if page else after
    changes = []
    for row in page:
        removed = row.pop("removed") or row["id"] is None
        del row["change_seq"]
        task_id = row.pop("changed_task_id")
        changes.append({"id": task_id, "deleted": removed, "task": None if removed else row})
    return {
        "changes": changes,
        "next_token": encode_token(SyncToken(seq=last, issued_at=now), key=token_key, user_id=user_id),
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
    forgotten = 0
    while True:
        batch = await connection.execute(
            _PURGE_FORGOTTEN, {"forget_before": datetime.now(UTC) - retention - REMOVAL_GRACE}
        )
        forgotten += batch
        if batch < PURGE_BATCH:
            return forgotten
