"""The one place that knows how to talk to the database: the engine and the connections it lends.

Access is async (psycopg 3's async connections, pooled by SQLAlchemy, or aiosqlite for the embedded
default) so a request never waits for a thread-pool hop while the database answers. Queries are
SQLAlchemy Core statements built once by the service; see `Connection` for how they run.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache, lru_cache
from typing import Any, cast

import psycopg
from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from sqlalchemy import Executable, event, exc, inspect, text
from sqlalchemy.engine import Compiled, Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from src.core.config import BACKEND_DIR, Settings
from src.core.errors import ServiceUnavailableError

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
        pool_reset_on_return=None,  # Database.connect leaves each connection idle: see _give_back
        hide_parameters=True,  # errors never carry task titles or descriptions into the log
    )
    if settings.db_pool_pre_ping and not ping_every_checkout:
        _ping_when_idle(engine, settings.db_pool_pre_ping_idle_seconds)
    return engine


class _Renewal:
    """What SQLAlchemy does when a statement it runs finds the database gone, done with public pool events
    for the statements sent straight to the driver: after `database_lost()`, every connection opened
    before that moment (the same restart broke it too) is replaced at its next checkout, instead of
    failing a request first."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._lost_at = float("-inf")
        event.listen(engine.sync_engine, "connect", self._opened)
        event.listen(engine.sync_engine, "checkout", self._checked_out)

    def database_lost(self) -> None:
        self._lost_at = time.monotonic()

    @staticmethod
    def _opened(_dbapi_connection: Any, record: Any) -> None:
        record.info["opened_at"] = time.monotonic()

    def _checked_out(self, _dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.get("opened_at", self._lost_at) < self._lost_at:
            raise DisconnectionError("the connection was opened before the database was lost")


def create_probe_engine(settings: Settings) -> AsyncEngine:
    """One connection for the readiness probe, outside the request pool: a pool that is fully lent out means
    the instance is busy, not that the database is down."""
    connect_args: dict[str, Any] = (
        {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
        if settings.is_sqlite
        else {"connect_timeout": settings.db_connect_timeout_seconds}
    )
    if settings.db_transaction_pooler:
        connect_args["prepare_threshold"] = None
    return create_async_engine(
        settings.database_url,
        pool_size=1,
        max_overflow=0,
        pool_timeout=settings.db_connect_timeout_seconds,
        connect_args=connect_args,
        hide_parameters=True,
    )


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


class Connection(ABC):
    """One pooled connection, lent to one request. Statements run in autocommit mode, so a read is one
    round trip; a write, which spans statements (the change, then its number in the change feed), calls
    `begin()` before its first statement and commits in the service."""

    dialect_name: str

    @abstractmethod
    async def fetch(self, statement: Executable, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The rows of a statement built once with bound parameters, as dicts in column order."""

    @abstractmethod
    async def execute(self, statement: Executable, params: dict[str, Any]) -> int:
        """Runs a statement that returns no rows; gives the number of rows it touched."""

    @abstractmethod
    async def execute_many(self, statement: Executable, rows: list[dict[str, Any]]) -> None:
        """Runs a statement once for each set of parameters, in as few round trips as the driver can."""

    @abstractmethod
    async def begin(self) -> None:
        """Runs the following statements in one transaction, ended by `commit()` or `rollback()`."""

    @abstractmethod
    async def commit(self) -> None: ...

    @abstractmethod
    async def rollback(self) -> None: ...


class _DriverConnection(Connection):
    """PostgreSQL: statements compiled once by SQLAlchemy, then sent straight to psycopg's async
    connection. SQLAlchemy's per-call execution layers (greenlet hops, compile-cache lookup, result
    processing) cost more than the query itself, and psycopg already gives the Python types."""

    dialect_name = "postgresql"

    def __init__(self, driver: psycopg.AsyncConnection[Any], dialect: Dialect, observers: list[StatementObserver]):
        self.driver = driver
        self._dialect = dialect
        self._observers = observers
        self.in_transaction = False

    @property
    def lost(self) -> bool:
        return self.driver.broken or self.driver.closed

    async def _run(self, statement: Executable, params: dict[str, Any]) -> psycopg.AsyncCursor[dict[str, Any]]:
        driver_statement = _driver_statement(statement, self._dialect)
        sql, values = driver_statement.sql, {**driver_statement.defaults, **params}
        for observer in self._observers:
            observer(sql, values)
        try:
            # Binary parameters and rows: UUIDs, times and integers skip formatting and parsing text.
            cursor = self.driver.cursor(row_factory=dict_row, binary=True)
            await cursor.execute(sql, values, prepare=driver_statement.prepare)
        except psycopg.Error as error:
            raise _as_sqlalchemy_error(error, sql, lost=self.lost) from error
        return cursor

    async def fetch(self, statement: Executable, params: dict[str, Any]) -> list[dict[str, Any]]:
        rows = await (await self._run(statement, params)).fetchall()
        if rows and not _always_utc(self.driver.info.timezone):
            _to_utc(rows)  # psycopg gives times in the session's time zone; the API speaks UTC
        return rows

    async def execute(self, statement: Executable, params: dict[str, Any]) -> int:
        return (await self._run(statement, params)).rowcount

    async def execute_many(self, statement: Executable, rows: list[dict[str, Any]]) -> None:
        driver_statement = _driver_statement(statement, self._dialect)
        values = [{**driver_statement.defaults, **row} for row in rows]
        for observer in self._observers:
            for row_values in values:
                observer(driver_statement.sql, row_values)
        try:
            await self.driver.cursor(binary=True).executemany(driver_statement.sql, values)
        except psycopg.Error as error:
            raise _as_sqlalchemy_error(error, driver_statement.sql, lost=self.lost) from error

    async def begin(self) -> None:
        await self.driver.set_isolation_level(psycopg.IsolationLevel.READ_COMMITTED)
        await self.driver.set_autocommit(False)
        self.in_transaction = True

    async def commit(self) -> None:
        await self._end_transaction(self.driver.commit, "COMMIT")

    async def rollback(self) -> None:
        await self._end_transaction(self.driver.rollback, "ROLLBACK")

    async def _end_transaction(self, end: Callable[[], Awaitable[None]], sql: str) -> None:
        try:
            await end()
        except psycopg.Error as error:
            raise _as_sqlalchemy_error(error, sql, lost=self.lost) from error
        await self._autocommit_again()

    async def _autocommit_again(self) -> None:
        if self.in_transaction:
            await self.driver.set_autocommit(True)
            await self.driver.set_isolation_level(None)
            self.in_transaction = False

    async def release(self) -> None:
        """Leaves the connection as the pool lent it: idle, in autocommit mode."""
        if self.driver.info.transaction_status != TransactionStatus.IDLE:
            await self.driver.rollback()
        await self._autocommit_again()

    @property
    def reusable(self) -> bool:
        return (
            not self.lost and self.driver.autocommit and self.driver.info.transaction_status == TransactionStatus.IDLE
        )


class _CoreConnection(Connection):
    """SQLite: statements run through SQLAlchemy Core, which stores UUIDs and times in SQLite's types."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self.dialect_name = connection.dialect.name

    async def fetch(self, statement: Executable, params: dict[str, Any]) -> list[dict[str, Any]]:
        result = await self._connection.execute(statement, params)
        return [dict(row) for row in result.mappings()]

    async def execute(self, statement: Executable, params: dict[str, Any]) -> int:
        result = await self._connection.execute(statement, params)
        return result.rowcount

    async def execute_many(self, statement: Executable, rows: list[dict[str, Any]]) -> None:
        await self._connection.execute(statement, rows)

    async def begin(self) -> None:
        # SQLite's only isolation for a writer; the connection returns to autocommit when it is closed.
        await self._connection.execution_options(isolation_level="SERIALIZABLE")

    async def commit(self) -> None:
        await self._connection.commit()

    async def rollback(self) -> None:
        await self._connection.rollback()


StatementObserver = Callable[[str, Any], None]


async def delete_in_batches(
    connection: Connection, statement: Executable, params: Callable[[], dict[str, Any]], batch: int
) -> int:
    """Runs a DELETE that takes at most `batch` rows (each run its own transaction, in autocommit) until a
    run takes fewer; how many rows went. `params` is asked again for each run (a cut-off moves on)."""
    deleted = 0
    while True:
        taken = await connection.execute(statement, params())
        deleted += taken
        if taken < batch:
            return deleted


# The DB-API (PEP 249) error classes, most specific first, and SQLAlchemy's class for each.
_SQLALCHEMY_ERRORS: list[tuple[type[psycopg.Error], type[DBAPIError]]] = [
    (psycopg.IntegrityError, exc.IntegrityError),
    (psycopg.OperationalError, exc.OperationalError),
    (psycopg.DataError, exc.DataError),
    (psycopg.ProgrammingError, exc.ProgrammingError),
    (psycopg.NotSupportedError, exc.NotSupportedError),
    (psycopg.InternalError, exc.InternalError),
    (psycopg.DatabaseError, exc.DatabaseError),
    (psycopg.InterfaceError, exc.InterfaceError),
]


def _as_sqlalchemy_error(error: psycopg.Error, sql: str | None, *, lost: bool) -> DBAPIError:
    """A driver error as SQLAlchemy raises it, so the service and the problem handlers see one family of
    errors whichever way a statement ran (IntegrityError, OperationalError -> 503, ...)."""
    error_class = next((mapped for driver, mapped in _SQLALCHEMY_ERRORS if isinstance(error, driver)), DBAPIError)
    return error_class(sql, None, error, hide_parameters=True, connection_invalidated=lost)


@dataclass(frozen=True, slots=True)
class _DriverStatement:
    sql: str
    defaults: dict[str, Any]
    # None: psycopg prepares the statement once it has run a few times, and PostgreSQL may settle on one
    # generic plan for it; False: never prepared, planned for its values on every run.
    prepare: bool | None


# Bounded: filtered lists come in many shapes (a number of tags, of words), each a statement of its own.
@lru_cache(maxsize=2048)
def _driver_statement(statement: Executable, dialect: Dialect) -> _DriverStatement:
    """A statement built once (with a fixed set of bound parameters: no expanding IN lists), compiled once.
    One whose best plan depends on its values says so with the execution option `plan_each_time`."""
    compiled: Compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    plan_each_time = statement.get_execution_options().get("plan_each_time", False)
    return _DriverStatement(compiled.string, dict(compiled.params), False if plan_each_time else None)


@cache
def _always_utc(zone: tzinfo) -> bool:
    """Whether a session time zone is UTC all year round (in winter and in summer)."""
    year = datetime.now(UTC).year
    return all(datetime(year, month, 1, tzinfo=zone).utcoffset() == timedelta(0) for month in (1, 7))


def _to_utc(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        for name, value in row.items():
            if isinstance(value, datetime):
                row[name] = value.astimezone(UTC)


async def in_pool_context(call: Callable[[], object]) -> None:
    """Runs a call on a connection that `AsyncEngine.raw_connection` lent (giving it back, invalidating it)
    where SQLAlchemy's asyncio layer lets the pool await the driver.

    SQLAlchemy has no public async call for this: its public path is an `AsyncConnection` per request,
    which costs 63 k more instructions per request (a tenth of a get). So this one function uses
    `sqlalchemy.util.greenlet_spawn`, and tests/unit/test_pool_context.py fails loudly if an upgrade
    changes it."""
    await greenlet_spawn(call)


# Set while a request holds one of the pool's slots (Database.admit): its connections take no other.
_admitted: ContextVar[bool] = ContextVar("admitted", default=False)


class DatabaseBusyError(ServiceUnavailableError):
    def __init__(self) -> None:
        super().__init__("the service is busy: every database connection is in use; retry shortly")


class Database:
    """The engine, and connections lent one per request.

    The pool's connections are handed out through as many slots, in arrival order: SQLAlchemy's pool lets
    a newcomer take a freed connection ahead of requests already waiting, which under load left some
    waiting for seconds. A request takes its slot before any of its work (`admit()`, called by
    `GuardedRoute.handle` for an authenticated call of a private route), waits for it at most
    `DB_ACQUIRE_TIMEOUT_SECONDS`, and is otherwise refused (DatabaseBusyError, a 503): under overload the
    service answers in bounded time or says no, and a request it says no to has cost little. A connection
    opened without a slot (work outside a request, such as the purges) takes one itself, so the pool is
    never asked for more than it has.

    The readiness probe has a connection of its own (`probe_engine`), so a busy instance is not taken
    for a dead one."""

    def __init__(self, settings: Settings) -> None:
        self.engine = create_engine(settings)
        self.probe_engine = create_probe_engine(settings)
        self._slots = asyncio.Semaphore(settings.db_pool_size + settings.db_max_overflow)
        self._acquire_timeout = settings.db_acquire_timeout_seconds
        self._direct = self.engine.dialect.name == "postgresql"
        self._renewal = _Renewal(self.engine) if self._direct else None
        self._observers: list[StatementObserver] = []

    def connect(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for one unit of work; anything left uncommitted is rolled back on return."""
        return _Lease(self) if self._direct else self._core_connection()

    async def admit(self) -> AbstractAsyncContextManager[None]:
        """Takes one of the pool's slots for a request's whole work, waiting for it a bounded time, or
        raises DatabaseBusyError. The slot is the caller's from here: `async with` the admission at once,
        which lends it to the connections the request opens and gives it back when the block ends."""
        await self._take_slot()
        return _Admission(self)

    async def _take_slot(self) -> None:
        if not self._slots.locked():  # free: no timer to arm
            await self._slots.acquire()
            return
        try:
            async with asyncio.timeout(self._acquire_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise DatabaseBusyError() from None

    @asynccontextmanager
    async def _core_connection(self) -> AsyncIterator[Connection]:
        takes_slot = not _admitted.get()
        if takes_slot:
            await self._take_slot()
        try:
            async with self.engine.connect() as core:
                yield _CoreConnection(core)
        finally:
            if takes_slot:
                self._slots.release()

    async def _borrow(self) -> tuple[PoolProxiedConnection, _DriverConnection]:
        try:
            pooled = await self.engine.raw_connection()
        except psycopg.Error as error:
            raise _as_sqlalchemy_error(error, None, lost=False) from error
        driver = cast(psycopg.AsyncConnection[Any], pooled.driver_connection)
        return pooled, _DriverConnection(driver, self.engine.dialect, self._observers)

    async def _give_back(self, pooled: PoolProxiedConnection, connection: _DriverConnection) -> None:
        # The pool does not reset connections on return (`pool_reset_on_return=None`): release() does, and
        # only when there is something to undo, which spares a rollback call on every request. Whatever
        # happens meanwhile (even a cancellation), the connection is either back in the pool, reset, or
        # invalidated.
        try:
            if not connection.lost:
                with suppress(psycopg.Error):  # a connection that cannot be reset is not lent again: see below
                    await connection.release()
        finally:
            if connection.reusable:
                await in_pool_context(pooled.close)
            else:
                if connection.lost and self._renewal is not None:
                    self._renewal.database_lost()
                await in_pool_context(pooled.invalidate)

    @contextmanager
    def statements_observed(self, observer: StatementObserver) -> Iterator[None]:
        """Calls `observer(sql, parameters)` for each statement sent while the block runs (diagnostics)."""

        def on_cursor_execute(_conn: Any, _cursor: Any, sql: str, parameters: Any, *_: Any) -> None:
            observer(sql, parameters)

        event.listen(self.engine.sync_engine, "before_cursor_execute", on_cursor_execute)
        self._observers.append(observer)
        try:
            yield
        finally:
            self._observers.remove(observer)
            event.remove(self.engine.sync_engine, "before_cursor_execute", on_cursor_execute)

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self.probe_engine.dispose()


class _Lease:
    """`async with database.connect()` on PostgreSQL: a class rather than an @asynccontextmanager, which
    costs a generator and its frames on every request."""

    __slots__ = ("_connection", "_database", "_pooled", "_takes_slot")

    def __init__(self, database: Database) -> None:
        self._database = database
        self._takes_slot = not _admitted.get()

    async def __aenter__(self) -> Connection:
        if self._takes_slot:
            await self._database._take_slot()
        try:
            self._pooled, self._connection = await self._database._borrow()
        except BaseException:
            if self._takes_slot:
                self._database._slots.release()
            raise
        return self._connection

    async def __aexit__(self, *_exc_info: object) -> None:
        try:
            await self._database._give_back(self._pooled, self._connection)
        finally:
            if self._takes_slot:
                self._database._slots.release()


class _Admission:
    """A slot already taken (`Database.admit`), held while the block runs."""

    __slots__ = ("_database", "_token")

    def __init__(self, database: Database) -> None:
        self._database = database

    async def __aenter__(self) -> None:
        self._token = _admitted.set(True)

    async def __aexit__(self, *_exc_info: object) -> None:
        _admitted.reset(self._token)
        self._database._slots.release()


def alembic_config(database_url: str | None = None) -> Config:
    """Alembic's configuration, migrating `database_url` (the settings' database when None) without
    touching the logging set-up of the process that calls it."""
    config = Config(str(ALEMBIC_INI))
    if database_url is not None:
        config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


def head_revision() -> str:
    """The newest Alembic revision in this checkout: what the database schema must be at."""
    config = alembic_config()
    heads = ScriptDirectory.from_config(config).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"expected one Alembic head, found {heads}")
    return heads[0]


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema revision the database is at, or None before the first migration: one round trip in the
    usual case, so the readiness probe answers quickly even while the service is busy. A connection the
    database dropped (a restart) is replaced and the question asked again, once."""
    for attempt in (1, 2):
        async with engine.connect() as connection:
            try:
                result = await connection.execute(_REVISION)
            except DBAPIError as error:
                if error.connection_invalidated and attempt == 1:
                    continue
                await connection.rollback()
                if await connection.run_sync(lambda sync: inspect(sync).has_table("alembic_version")):
                    raise
                return None  # never migrated
            return result.scalar_one_or_none()
    raise AssertionError("unreachable")


_REVISION = text("SELECT version_num FROM alembic_version")
