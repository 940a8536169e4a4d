"""A write without If-Match that waits for its task's row while another request moves the task out and back
(deleted and restored, or restored and deleted again) finds the task gone when the row is freed: it answers
404, never a 412 for a precondition the client did not send, and changes nothing.

PostgreSQL only: SQLite serialises writers, so there a write never waits on a row."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, Table, delete, insert, select, text

from src.models.trash import trashed_tasks
from src.services.task_listing import tasks
from tests.conftest import User

Write = Callable[[TestClient, User, str], httpx2.Response]

WRITES: dict[str, tuple[Table, Write]] = {
    "update": (
        tasks,
        lambda client, user, task_id: client.patch(user.task_url(task_id), json={"title": "new"}, headers=user.headers),
    ),
    "replace": (
        tasks,
        lambda client, user, task_id: client.put(user.task_url(task_id), json={"title": "new"}, headers=user.headers),
    ),
    "toggle": (
        tasks,
        lambda client, user, task_id: client.patch(f"{user.task_url(task_id)}/complete", headers=user.headers),
    ),
    "delete": (tasks, lambda client, user, task_id: client.delete(user.task_url(task_id), headers=user.headers)),
    "restore": (
        trashed_tasks,
        lambda client, user, task_id: client.post(
            f"/api/v1/users/{user.id}/trash/{task_id}/restore", headers=user.headers
        ),
    ),
}


def _wait_until_a_statement_waits_for_a_lock(db: Engine) -> None:
    deadline = time.monotonic() + 10
    with db.connect() as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
            if waiting:
                return
            watcher.rollback()
            time.sleep(0.01)
    raise AssertionError("the write never waited for the moved row")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_write_that_finds_its_task_moved_away_is_404_though_it_is_back(
    client: TestClient, alice: User, db: Engine, write: str
) -> None:
    table, send = WRITES[write]
    created = client.post(alice.tasks_url, json={"title": "old"}, headers=alice.headers)
    task_id = created.json()["id"]
    if table is trashed_tasks:
        assert client.delete(alice.task_url(task_id), headers=alice.headers).status_code == 204
    row_of = select(table).where(table.c.id == uuid.UUID(task_id))
    with db.connect() as mover, ThreadPoolExecutor(1) as pool:
        # Out and back in one transaction: a new row with the old one's every value, which the write,
        # blocked on the old row, cannot see when the old one is gone.
        moved = mover.execute(delete(table).where(table.c.id == uuid.UUID(task_id)).returning(*table.c)).one()
        mover.execute(insert(table).values(moved._asdict()))
        answer = pool.submit(send, client, alice, task_id)
        _wait_until_a_statement_waits_for_a_lock(db)
        mover.commit()
        response = answer.result(timeout=10)

    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"
    with db.connect() as connection:
        assert connection.execute(row_of).one() == moved
