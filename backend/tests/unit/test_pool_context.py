"""Connections the service sends statements on directly: lent and given back through the one private piece
of SQLAlchemy it uses (`in_pool_context`, on `sqlalchemy.util.greenlet_spawn`), and replaced after the
database is lost. These fail loudly on an upgrade that changes either."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.util import await_only

from src.core.database import Connection, Database, in_pool_context
from tests.conftest import settings_for

_BACKEND_PID = text("SELECT pg_backend_pid() AS pid")


def test_a_call_in_the_pool_context_may_await_the_driver() -> None:
    async def slept() -> str:
        await asyncio.sleep(0)
        return "awaited"

    results: list[str] = []

    async def run() -> None:
        await in_pool_context(lambda: results.append(await_only(slept())))

    asyncio.run(run())
    assert results == ["awaited"]


async def _pid(connection: Connection) -> int:
    rows = await connection.fetch(_BACKEND_PID, {})
    pid: int = rows[0]["pid"]
    return pid


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_every_lease_is_given_back_and_a_lost_database_renews_the_whole_pool(database_url: str) -> None:
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")

    async def run() -> dict[str, Any]:
        # No pre-ping: only the renewal after a loss can spare the second connection's request.
        database = Database(settings_for(database_url, db_pool_size=2, db_max_overflow=0, db_pool_pre_ping=False))
        pool: Any = database.engine.sync_engine.pool
        try:
            async with database.connect() as first, database.connect() as second:
                before = {await _pid(first), await _pid(second)}
            returned = (pool.checkedout(), pool.checkedin())
            with psycopg.connect(conninfo, autocommit=True) as admin:  # the database restarts, as far as they know
                for pid in before:
                    admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            with pytest.raises(DBAPIError) as lost:
                async with database.connect() as broken:
                    await _pid(broken)
            async with database.connect() as first, database.connect() as second:
                after = {await _pid(first), await _pid(second)}
            return {
                "returned": returned,
                "invalidated": lost.value.connection_invalidated,
                "before": before,
                "after": after,
                "finally": (pool.checkedout(), pool.checkedin()),
            }
        finally:
            await database.dispose()

    outcome = asyncio.run(run())
    assert outcome["returned"] == (0, 2)
    assert outcome["invalidated"] is True
    assert len(outcome["after"]) == 2
    assert outcome["after"].isdisjoint(outcome["before"])
    assert outcome["finally"] == (0, 2)
