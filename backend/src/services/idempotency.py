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
from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.core.database import Sessions
from src.core.errors import ConflictError, InvalidInputError
from src.models import IdempotencyRecord
from src.models.task import TaskCreate, TaskRecord

logger = logging.getLogger(__name__)

records: Table = IdempotencyRecord.__table__  # type: ignore[attr-defined]


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


def fingerprint(data: TaskCreate) -> str:
    """The validated body, so retries that differ only in JSON spacing or key order still match."""
    return hashlib.sha256(data.model_dump_json().encode()).hexdigest()


async def claim(*, session: AsyncSession, user_id: str, key: str) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return
    lock_id = func.hashtextextended(user_id + " " + key, 0)
    if not await session.scalar(select(func.pg_try_advisory_xact_lock(lock_id))):
        await session.rollback()
        raise IdempotencyKeyInFlight()


async def stored_response(*, session: AsyncSession, user_id: str, key: str, now: datetime) -> tuple[str, str] | None:
    """(request fingerprint, response body) of a live record; an expired one is removed."""
    owned = (records.c.user_id == user_id) & (records.c.key == key)
    row = (
        await session.execute(
            select(records.c.request_fingerprint, records.c.response_body, records.c.expires_at).where(owned)
        )
    ).one_or_none()
    if row is None:
        return None
    if row.expires_at <= now:
        await session.execute(delete(records).where(owned))
        return None
    return row.request_fingerprint, row.response_body


def replay(stored: tuple[str, str], request_fingerprint: str) -> TaskRecord:
    stored_fingerprint, response_body = stored
    if stored_fingerprint != request_fingerprint:
        raise IdempotencyKeyReused()
    task: TaskRecord = orjson.loads(response_body)
    return task


async def remember(
    *,
    session: AsyncSession,
    user_id: str,
    key: str,
    request_fingerprint: str,
    task: TaskRecord,
    now: datetime,
    retention: timedelta,
) -> None:
    await session.execute(
        insert(records).values(
            user_id=user_id,
            key=key,
            request_fingerprint=request_fingerprint,
            task_id=task["id"],
            response_body=orjson.dumps(task, option=orjson.OPT_UTC_Z).decode(),
            created_at=now,
            expires_at=now + retention,
        )
    )


async def purge_expired(*, session: AsyncSession, now: datetime) -> int:
    result = await session.execute(delete(records).where(records.c.expires_at <= now))
    await session.commit()
    purged: int = result.rowcount  # type: ignore[attr-defined]
    return purged


async def purge_periodically(sessions: Sessions, *, interval_seconds: float) -> None:
    """Runs for the life of the process; a failed round (database away) is logged and retried later."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            async with sessions.open() as session:
                purged = await purge_expired(session=session, now=datetime.now(UTC))
            if purged:
                logger.info("expired idempotency keys purged", extra={"count": purged})
        except Exception as error:  # noqa: BLE001 - the next round tries again
            logger.warning("idempotency key purge failed", extra={"error": type(error).__name__})
