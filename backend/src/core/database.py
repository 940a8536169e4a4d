"""The one place that knows how to talk to the database: the engine and its sessions.

Access is async (SQLAlchemy's asyncio extension over psycopg 3, or aiosqlite for the embedded
default) so a request never waits for a thread-pool hop while the database answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Executable, event, inspect, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from src.core.config import BACKEND_DIR, Settings

ALEMBIC_INI = BACKEND_DIR / "alembic.ini"
SQLITE_BUSY_TIMEOUT_SECONDS = 15


def create_engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        return _create_sqlite_engine(settings)
    connect_args: dict[str, Any] = {"connect_timeout": settings.db_connect_timeout_seconds}
    if settings.db_transaction_pooler:
        # Each transaction may run on another server connection: no server-side prepared statements,
        # and no startup options (PgBouncer refuses them; set statement_timeout on the role instead).
        connect_args["prepare_threshold"] = None
    elif settings.db_statement_timeout_ms:
        connect_args["options"] = f"-c statement_timeout={settings.db_statement_timeout_ms}"
    ping_every_checkout = settings.db_pool_pre_ping and settings.db_pool_pre_ping_idle_seconds == 0
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_recycle=settings.db_pool_recycle_seconds,
        pool_pre_ping=ping_every_checkout,
        connect_args=connect_args,
        isolation_level="AUTOCOMMIT",
        hide_parameters=True,  # errors never carry task titles or descriptions into the log
    )
    if settings.db_pool_pre_ping and not ping_every_checkout:
        _ping_when_idle(engine, settings.db_pool_pre_ping_idle_seconds)
    return engine


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Pre-ping, for connections that sat idle: a ping costs a round trip, and a connection used a
    moment ago has just proved itself. A dead one found by the ping is replaced before use; one that
    died while busy fails its statement (a 503 the client retries), and SQLAlchemy then invalidates
    every connection opened before the failure, so the pool recovers at once."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get("returned_at")
        if returned_at is None or time.monotonic() - returned_at < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # any failure means the connection is gone
            raise DisconnectionError("the pooled connection did not answer a ping") from error


def _create_sqlite_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url,
        pool_pre_ping=settings.db_pool_pre_ping,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        isolation_level="AUTOCOMMIT",
        hide_parameters=True,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers run beside the single writer; foreign keys are off by default in SQLite.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


_DRIVER_SQL: dict[Executable, tuple[str, dict[str, Any]] | None] = {}


def _driver_sql(statement: Executable, dialect: Dialect) -> tuple[str, dict[str, Any]] | None:
    """The statement as the driver's SQL and its default parameters, compiled once per statement;
    None where SQLAlchemy's full execution is needed (SQLite's type conversions, expanding IN lists)."""
    if statement not in _DRIVER_SQL:
        compiled = None
        if dialect.name == "postgresql":
            candidate = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
            if not candidate.post_compile_params:
                compiled = (candidate.string, dict(candidate.params))
        _DRIVER_SQL[statement] = compiled
    return _DRIVER_SQL[statement]


def _as_dicts(result: Any) -> list[dict[str, Any]]:
    keys = list(result.keys())
    rows = [dict(zip(keys, row, strict=True)) for row in result]
    # psycopg gives times in the session's time zone; the API speaks UTC. One connection has one zone,
    # so the first row tells whether any conversion is needed at all.
    if rows and any(isinstance(value, datetime) and value.utcoffset() for value in rows[0].values()):
        for row in rows:
            for name, value in row.items():
                if isinstance(value, datetime):
                    row[name] = value.astimezone(UTC)
    return rows


async def fetch(session: AsyncSession, statement: Executable, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a statement built once with bound parameters, as dicts in column order.

    On PostgreSQL the statement is compiled once and sent as driver SQL on the session's connection,
    skipping SQLAlchemy's per-call compile-cache lookup and result processing (psycopg already gives
    the Python types); the statement events, the pool and the session's transaction are the same."""
    connection = await session.connection()
    compiled = _driver_sql(statement, connection.dialect)
    if compiled is None:
        result = await session.execute(statement, params)
        return [dict(row) for row in result.mappings()]
    sql, defaults = compiled
    return _as_dicts(await connection.exec_driver_sql(sql, {**defaults, **params}))


async def execute(session: AsyncSession, statement: Executable, params: dict[str, Any]) -> int:
    """Runs a statement that returns no rows (built once, like `fetch`'s); gives the rows it touched."""
    connection = await session.connection()
    compiled = _driver_sql(statement, connection.dialect)
    if compiled is None:
        result = await session.execute(statement, params)
    else:
        sql, defaults = compiled
        result = await connection.exec_driver_sql(sql, {**defaults, **params})
    return result.rowcount  # type: ignore[attr-defined,no-any-return]


async def begin_transaction(session: AsyncSession) -> None:
    """Runs the rest of the session's work in one transaction, committed by `session.commit()`.

    Connections are in autocommit mode by default: every write the service makes is a single statement
    (an INSERT, or an UPDATE or DELETE ... WHERE user_id AND id), atomic on its own, so an explicit
    BEGIN and COMMIT would only add two round trips to each request. Work that spans statements (an
    idempotent create) asks for a transaction here, before its first statement."""
    isolation = "SERIALIZABLE" if session.get_bind().dialect.name == "sqlite" else "READ COMMITTED"
    await session.connection(execution_options={"isolation_level": isolation})


class Sessions:
    """Opens one session per request. At most as many sessions as the pool has connections are open at
    once, and requests past that wait in arrival order: SQLAlchemy's pool lets a newcomer take a freed
    connection ahead of requests already waiting, which under load left some waiting for seconds."""

    def __init__(self, engine: AsyncEngine, capacity: int) -> None:
        # expire_on_commit=False: results are read after the service commits, before the response.
        self._sessionmaker = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._slots = asyncio.Semaphore(capacity)

    @asynccontextmanager
    async def open(self) -> AsyncIterator[AsyncSession]:
        """The service commits; anything left open is rolled back when the session closes."""
        async with self._slots, self._sessionmaker() as session:
            yield session


def head_revision() -> str:
    """The newest Alembic revision in this checkout: what the database schema must be at."""
    config = Config(str(ALEMBIC_INI))
    heads = ScriptDirectory.from_config(config).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"expected one Alembic head, found {heads}")
    return heads[0]


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema revision the database is at, or None before the first migration."""
    async with engine.connect() as connection:
        has_table = await connection.run_sync(lambda sync: inspect(sync).has_table("alembic_version"))
        if not has_table:
            return None
        return (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one_or_none()
