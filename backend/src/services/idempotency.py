"""Idempotent creates (the IETF Idempotency-Key draft), keyed per user.

The first request with a key stores its response in the same transaction as the task it creates, so
either both exist or neither does. A retry with the same key and body replays that stored response;
the same key with another body is a 422. On PostgreSQL a transaction-scoped advisory lock on
(user, key) makes a retry that arrives while the first request is still running a 409 at once, instead
of waiting; on SQLite writers are serialised, so such a retry waits and then replays.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import Table, bindparam, delete, func, insert, select

from src.core.database import Connection, Database
from src.core.errors import ConflictError, InvalidInputError
from src.models import IdempotencyRecord
from src.models.task import TaskCreate, TaskRecord

logger = logging.getLogger(__name__)

records: Table = IdempotencyRecord.__table__  # type: ignore[attr-defined]

# Built once, with bound parameters, like the task statements.
_OWNED = (records.c.user_id == bindparam("owner_id", type_=records.c.user_id.type)) & (
    records.c.key == bindparam("record_key", type_=records.c.key.type)
)
_LOCK = select(func.pg_try_advisory_xact_lock(func.hashtextextended(bindparam("lock_name"), 0)).label("locked"))
_STORED = select(records.c.request_fingerprint, records.c.response_body, records.c.expires_at).where(_OWNED)
_FORGET = delete(records).where(_OWNED)
_REMEMBER = insert(records).values(
    {column.name: bindparam(f"new_{column.name}", type_=column.type) for column in records.c}
)
_PURGE = delete(records).where(records.c.expires_at <= bindparam("now", type_=records.c.expires_at.type))


class IdempotencyKeyInFlight(ConflictError):
    def __init__(self) -> None:
        super().__init__("a request with this Idempotency-Key is still being processed: retry in a moment")


class IdempotencyKeyReused(InvalidInputError):
    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was already used with a different request body",
            loc=("header", "Idempotency-Key"),
            error_type="idempotency_key_reused",
        )


# Fields added to a task after the first release count only when they differ from their default, so a
# retry of a create made before an upgrade still matches its first request.
_ADDED_FIELDS = ("due_at", "priority", "tags")


def fingerprint(data: TaskCreate) -> str:
    """The validated body, so retries that differ only in JSON spacing or key order still match."""
    fields = TaskCreate.model_fields
    defaults = {
        name for name in _ADDED_FIELDS if getattr(data, name) == fields[name].get_default(call_default_factory=True)
    }
    return hashlib.sha256(data.model_dump_json(exclude=defaults).encode()).hexdigest()


async def claim(*, connection: Connection, user_id: str, key: str) -> None:
    if connection.dialect_name != "postgresql":
        return
    [lock] = await connection.fetch(_LOCK, {"lock_name": user_id + " " + key})
    if not lock["locked"]:
        await connection.rollback()
        raise IdempotencyKeyInFlight()


async def stored_response(*, connection: Connection, user_id: str, key: str, now: datetime) -> tuple[str, str] | None:
    """(request fingerprint, response body) of a live record; an expired one is removed."""
    owned = {"owner_id": user_id, "record_key": key}
    rows = await connection.fetch(_STORED, owned)
    if not rows:
        return None
    if rows[0]["expires_at"] <= now:
        await connection.execute(_FORGET, owned)
        return None
    return rows[0]["request_fingerprint"], rows[0]["response_body"]


def replay(stored: tuple[str, str], request_fingerprint: str) -> TaskRecord:
    stored_fingerprint, response_body = stored
    if stored_fingerprint != request_fingerprint:
        raise IdempotencyKeyReused()
    task: TaskRecord = orjson.loads(response_body)
    return task


async def remember(
    *,
    connection: Connection,
    user_id: str,
    key: str,
    request_fingerprint: str,
    task: TaskRecord,
    now: datetime,
    retention: timedelta,
) -> None:
    record = {
        "user_id": user_id,
        "key": key,
        "request_fingerprint": request_fingerprint,
        "task_id": task["id"],
        "response_body": orjson.dumps(task, option=orjson.OPT_UTC_Z).decode(),
        "created_at": now,
        "expires_at": now + retention,
    }
    await connection.execute(_REMEMBER, {f"new_{name}": value for name, value in record.items()})


async def purge_expired(*, connection: Connection, now: datetime) -> int:
    return await connection.execute(_PURGE, {"now": now})


async def purge_periodically(database: Database, *, interval_seconds: float) -> None:
    """Runs for the life of the process; a failed round (database away) is logged and retried later."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            async with database.connect() as connection:
                purged = await purge_expired(connection=connection, now=datetime.now(UTC))
            if purged:
                logger.info("expired idempotency keys purged", extra={"count": purged})
        except Exception as error:  # noqa: BLE001 - the next round tries again
            logger.warning("idempotency key purge failed", extra={"error": type(error).__name__})
