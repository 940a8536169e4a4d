"""EXPLAIN guard: every list query, of every sort and status, first page or by cursor, is an index range
scan in the order asked for (no sort of any kind over the user's rows, no sequential scan), and no page runs
a COUNT; with a filter, the only rows ever sorted are the filter's matches, read through its own index."""

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
from src.models import Task, TaskTag, trashed_tasks
from tests.conftest import User, make_token, settings_for

SORTS = [
    "-created_at",
    "created_at",
    "-updated_at",
    "updated_at",
    "title",
    "-title",
    "due_at",
    "-due_at",
    "priority",
    "-priority",
]
FILTERS: list[dict[str, Any]] = [
    {"tag": "common"},
    {"tag": "rare"},
    {"tag": ["common", "rare"]},
    {"priority": "high"},
    {"priority": ["low", "medium"]},
    {"due_after": "2026-03-01T00:00:00Z", "due_before": "2026-03-03T00:00:00Z"},
    {"due_after": "2026-01-01T00:00:00Z"},
    {"q": "common"},
    {"q": "zyxwv"},
    {"q": "zyxwv common"},
    {"q": "common", "tag": "rare", "priority": "high"},
]
# Indexes that find a filter's matches: a sort over rows read through one of them sorts only matches.
FILTER_INDEXES = {"ix_tasks_search", "ix_tasks_tag_keys", "ix_tasks_user_id_due_at_id"}
STATUSES = ["all", "pending", "completed"]
ROWS_PER_USER = 2000


def _seed(db: Engine, user_ids: list[str]) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows: list[dict[str, Any]] = [
        {
            "id": uuid.uuid4(),
            "user_id": user_id,
            "title": f"task {index % 97:02d} {index}" + (" common" if index % 10 == 0 else ""),
            "title_folded": f"task {index % 97:02d} {index}" + (" common" if index % 10 == 0 else ""),
            "description": "zyxwv" if index % 500 == 0 else None,
            "description_folded": "zyxwv" if index % 500 == 0 else None,
            "completed": index % 3 == 0,
            "completed_at": base if index % 3 == 0 else None,
            "created_at": base + timedelta(seconds=index),
            "updated_at": base + timedelta(seconds=index * 7 % ROWS_PER_USER),
            "version": 1,
            "due_at": None if index % 4 == 0 else base + timedelta(hours=index * 37 % (24 * 365)),
            "priority": index % 4,
            "tags": [],
        }
        for user_id in user_ids
        for index in range(ROWS_PER_USER)
    ]
    # The neighbours tag every task ten times, so that reading the tags table whole is never the cheap way.
    for index, row in enumerate(rows):
        row["tags"] = row["tag_keys"] = (
            (["common"] if index % 10 == 0 else [])
            + (["rare"] if index % 400 == 0 else [])
            + ([f"neighbour {number}" for number in range(10)] if row["user_id"] != user_ids[0] else [])
        )
    tags = [
        {"task_id": row["id"], "user_id": row["user_id"], "tag_key": tag, "tag": tag}
        for row in rows
        for tag in row["tag_keys"]
    ]
    with db.begin() as connection:
        connection.execute(insert(Task.__table__), rows)  # type: ignore[attr-defined]
        connection.execute(insert(TaskTag.__table__), tags)  # type: ignore[attr-defined]
        # What autovacuum does on a live database: the rows just added move from the GIN indexes' lists of
        # pending entries (read whole by every search) into the indexes proper.
        for gin_index in ("ix_tasks_search", "ix_tasks_tag_keys"):
            connection.execute(text(f"SELECT gin_clean_pending_list('{gin_index}'::regclass)"))
        connection.execute(text("ANALYZE tasks"))
        connection.execute(text("ANALYZE task_tags"))


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


def _plans(database_url: str, queries: list[tuple[str, Any]]) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """For each query the service sent: what to show when a check fails, and the nodes of its plan."""
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as connection:
        for sql, params in queries:
            plan = connection.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()[0][0]["Plan"]  # type: ignore[index]
            yield (sql, params, plan), list(_plan_nodes(plan))


def _index_scans(nodes: list[dict[str, Any]]) -> list[str]:
    return [node["Index Name"] for node in nodes if node["Node Type"] in {"Index Scan", "Index Only Scan"}]


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
    for shown, nodes in _plans(database_url, list_queries):
        kinds = {node["Node Type"] for node in nodes}
        assert not [kind for kind in kinds if "Sort" in kind], shown  # Sort, Incremental Sort
        assert "Seq Scan" not in kinds, shown
        scans = _index_scans(nodes)
        assert scans, shown
        assert all(name.startswith("ix_tasks_user_id_") for name in scans), shown


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_filtered_list_sorts_at_most_the_filters_matches(
    database_url: str, planned: tuple[TestClient, User, list[tuple[str, Any]]]
) -> None:
    client, user, statements = planned
    for filters in FILTERS:
        for sort in ["-created_at", "title", "due_at", "-priority"]:
            first = client.get(user.tasks_url, params={"sort": sort, "limit": 5, **filters}, headers=user.headers)
            assert first.status_code == 200, first.text
            cursor = first.json()["next_cursor"]
            if cursor:
                deep = client.get(
                    user.tasks_url, params={"sort": sort, "limit": 5, "cursor": cursor, **filters}, headers=user.headers
                )
                assert deep.status_code == 200

    list_queries = [(sql, params) for sql, params in statements if "FROM tasks" in sql and "LIMIT" in sql]
    assert len(list_queries) >= len(FILTERS) * 4
    for shown, nodes in _plans(database_url, list_queries):
        assert "Seq Scan" not in {node["Node Type"] for node in nodes}, shown
        for sort_node in (node for node in nodes if "Sort" in node["Node Type"]):
            read_through = {node.get("Index Name") for node in _plan_nodes(sort_node)}
            assert read_through & FILTER_INDEXES, shown


def _on_a_service_connection(client: TestClient, sql: str) -> list[tuple[Any, ...]]:
    """The rows of `sql` run on a connection from the service's own pool (as its requests see the session)."""
    database: Database = client.app.state.database  # type: ignore[attr-defined]

    async def fetch() -> list[tuple[Any, ...]]:
        async with database.connect() as connection:
            cursor = await connection.driver.execute(sql)  # type: ignore[attr-defined]
            return list(await cursor.fetchall())

    return client.portal.call(fetch)  # type: ignore[union-attr]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_filtered_list_is_planned_for_its_values_each_time(database_url: str) -> None:
    """Which plan is best for a filter depends on its values (a rare tag or a common one), so a filtered
    list is never a prepared statement, which PostgreSQL may run with one generic plan for all values."""
    user = User(id=f"prepared-{uuid.uuid4().hex[:8]}", token="")
    user = User(id=user.id, token=make_token(user.id))
    settings = settings_for(database_url, db_pool_size=1, db_max_overflow=0)
    with TestClient(create_app(settings)) as client:
        for _ in range(8):  # psycopg prepares a statement on its fifth run
            assert client.get(user.tasks_url, params={"tag": "work"}, headers=user.headers).status_code == 200
            assert client.get(user.tasks_url, headers=user.headers).status_code == 200
        prepared = [row[0] for row in _on_a_service_connection(client, "SELECT statement FROM pg_prepared_statements")]

    lists = [sql for sql in prepared if "FROM tasks" in sql and "LIMIT" in sql]
    assert lists, prepared
    assert not [sql for sql in lists if "task_tags" in sql or "tag_keys" in sql], lists


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_service_prices_random_reads_as_a_cached_database(database_url: str) -> None:
    """The migrations set random_page_cost to 1.1 for the database: at the default of 4, PostgreSQL reads a
    whole GIN posting list for a common word or tag in a short list (40 ms instead of 0.4 ms)."""
    with TestClient(create_app(settings_for(database_url, db_pool_size=1, db_max_overflow=0))) as client:
        assert _on_a_service_connection(client, "SHOW random_page_cost") == [("1.1",)]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_page_of_the_trash_is_an_ordered_index_range_scan(
    database_url: str, db: Engine, planned: tuple[TestClient, User, list[tuple[str, Any]]]
) -> None:
    client, user, statements = planned
    neighbour = f"neighbour-{uuid.uuid4().hex[:8]}"
    deleted = datetime.now(UTC) - timedelta(days=1)
    with db.begin() as connection:  # the seeded tasks, in the trash of the user and of a neighbour
        trashed = connection.execute(
            text("SELECT * FROM tasks WHERE user_id = :user_id"), {"user_id": user.id}
        ).mappings()
        rows = [
            {**row, "id": uuid.uuid4(), "user_id": owner, "deleted_at": deleted + timedelta(seconds=index)}
            for index, row in enumerate(trashed)
            for owner in (user.id, neighbour)
        ]
        connection.execute(insert(trashed_tasks), rows)
        connection.execute(text("ANALYZE trashed_tasks"))
    first = client.get(f"/api/v1/users/{user.id}/trash", headers=user.headers)
    assert first.status_code == 200
    deep = client.get(
        f"/api/v1/users/{user.id}/trash", params={"cursor": first.json()["next_cursor"]}, headers=user.headers
    )
    assert deep.status_code == 200

    pages = [(sql, params) for sql, params in statements if "FROM trashed_tasks" in sql and "LIMIT" in sql]
    assert len(pages) == 2
    for shown, nodes in _plans(database_url, pages):
        assert not [node for node in nodes if "Sort" in node["Node Type"] or node["Node Type"] == "Seq Scan"], shown
        assert _index_scans(nodes) == ["ix_trashed_tasks_user_id_deleted_at_id"], shown


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_sync_is_one_range_of_the_users_changes(
    database_url: str, db: Engine, planned: tuple[TestClient, User, list[tuple[str, Any]]]
) -> None:
    client, user, statements = planned
    with db.begin() as connection:  # a change for each seeded task, as migration 0005 records them
        connection.execute(
            text(
                "INSERT INTO task_changes (user_id, task_id, seq, deleted, changed_at) "
                "SELECT user_id, id, 0, false, now() FROM tasks ON CONFLICT DO NOTHING"
            )
        )
        connection.execute(text("ANALYZE task_changes"))
    url = f"/api/v1/users/{user.id}/changes"
    first = client.get(url, headers=user.headers)
    assert first.status_code == 200
    assert len(first.json()["changes"]) == 100
    assert client.get(url, params={"since": first.json()["next_token"]}, headers=user.headers).status_code == 200

    syncs = [(sql, params) for sql, params in statements if "FROM task_changes" in sql and "LIMIT" in sql]
    assert len(syncs) == 2
    for shown, nodes in _plans(database_url, syncs):
        assert not [node for node in nodes if "Sort" in node["Node Type"] or node["Node Type"] == "Seq Scan"], shown
        assert _index_scans(nodes) == ["ix_task_changes_user_id_seq_task_id", "pk_tasks"], shown
