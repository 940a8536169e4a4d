"""EXPLAIN guard: every list query, of every sort and filter, first page or by cursor, is an index range
scan in the order asked for (no sort of any kind over the user's rows, no sequential scan), and no page runs
a COUNT."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, text

from src.core.database import Database
from src.main import create_app
from src.models import Task
from tests.conftest import User, make_token, settings_for

SORTS = ["-created_at", "created_at", "-updated_at", "updated_at", "title", "-title"]
STATUSES = ["all", "pending", "completed"]
ROWS_PER_USER = 2000


def _seed(db: Engine, user_ids: list[str]) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "id": uuid.uuid4(),
            "user_id": user_id,
            "title": f"task {index % 97:02d} {index}",
            "description": None,
            "completed": index % 3 == 0,
            "completed_at": base if index % 3 == 0 else None,
            "created_at": base + timedelta(seconds=index),
            "updated_at": base + timedelta(seconds=index * 7 % ROWS_PER_USER),
            "version": 1,
        }
        for user_id in user_ids
        for index in range(ROWS_PER_USER)
    ]
    with db.begin() as connection:
        connection.execute(insert(Task.__table__), rows)  # type: ignore[attr-defined]
        connection.execute(text("ANALYZE tasks"))


@pytest.fixture
def planned(database_url: str, db: Engine) -> Iterator[tuple[TestClient, User, list[tuple[str, Any]]]]:
    user = User(id=f"planned-{uuid.uuid4().hex[:8]}", token="")
    user = User(id=user.id, token=make_token(user.id))
    _seed(db, [user.id, f"neighbour-{uuid.uuid4().hex[:8]}", f"neighbour-{uuid.uuid4().hex[:8]}"])
    statements: list[tuple[str, Any]] = []
    with TestClient(create_app(settings_for(database_url))) as client:
        database: Database = client.app.state.database  # type: ignore[attr-defined]
        with database.statements_observed(lambda statement, parameters: statements.append((statement, parameters))):
            yield client, user, statements


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_every_list_query_is_an_ordered_index_range_scan(
    database_url: str, planned: tuple[TestClient, User, list[tuple[str, Any]]]
) -> None:
    client, user, statements = planned
    for sort in SORTS:
        for status in STATUSES:
            first = client.get(user.tasks_url, params={"sort": sort, "status": status}, headers=user.headers)
            assert first.status_code == 200
            cursor = first.json()["next_cursor"]
            deep = client.get(
                user.tasks_url, params={"sort": sort, "status": status, "cursor": cursor}, headers=user.headers
            )
            assert deep.status_code == 200

    list_queries = [(sql, params) for sql, params in statements if "FROM tasks" in sql and "LIMIT" in sql]
    assert len(list_queries) == len(SORTS) * len(STATUSES) * 2
    assert not [sql for sql, _ in statements if "count(" in sql.lower()]
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as connection:
        for sql, params in list_queries:
            plan = connection.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()[0][0]["Plan"]  # type: ignore[index]
            nodes = list(_plan_nodes(plan))
            kinds = {node["Node Type"] for node in nodes}
            assert not [kind for kind in kinds if "Sort" in kind], (sql, params, plan)  # Sort, Incremental Sort
            assert "Seq Scan" not in kinds, (sql, params, plan)
            scans = [node for node in nodes if node["Node Type"] in {"Index Scan", "Index Only Scan"}]
            assert scans, (sql, plan)
            assert all(node["Index Name"].startswith("ix_tasks_user_id_") for node in scans), plan
