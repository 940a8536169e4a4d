"""PATCH /api/v1/users/{user_id}/tasks/{task_id}/complete"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import User, stored_task

CreateTask = Callable[..., dict[str, Any]]


def test_toggle_completes_then_reopens(client: TestClient, alice: User, create_task: CreateTask, db: Engine) -> None:
    task = create_task(alice)
    url = alice.task_url(task["id"]) + "/complete"

    completed = client.patch(url, headers=alice.headers)
    reopened = client.patch(url, headers=alice.headers)

    assert completed.status_code == reopened.status_code == 200
    assert completed.json()["completed"] is True
    assert completed.json()["completed_at"] is not None
    assert completed.json()["version"] == 2
    assert reopened.json()["completed"] is False
    assert reopened.json()["completed_at"] is None
    assert reopened.json()["version"] == 3
    row = stored_task(db, task["id"])
    assert row is not None
    assert (bool(row["completed"]), row["completed_at"], row["version"]) == (False, None, 3)


def test_concurrent_toggles_each_apply(client: TestClient, alice: User, create_task: CreateTask, db: Engine) -> None:
    task = create_task(alice)
    url = alice.task_url(task["id"]) + "/complete"
    toggles = 9

    with ThreadPoolExecutor(max_workers=toggles) as pool:
        statuses = list(pool.map(lambda _: client.patch(url, headers=alice.headers).status_code, range(toggles)))

    assert statuses == [200] * toggles
    row = stored_task(db, task["id"])
    assert row is not None
    assert row["version"] == 1 + toggles
    assert bool(row["completed"]) is True
    assert row["completed_at"] is not None


def test_toggle_of_another_users_task_is_404(
    client: TestClient, alice: User, bob: User, create_task: CreateTask, db: Engine
) -> None:
    bobs_task = create_task(bob)

    response = client.patch(alice.task_url(bobs_task["id"]) + "/complete", headers=alice.headers)

    assert response.status_code == 404
    assert stored_task(db, bobs_task["id"])["version"] == 1  # type: ignore[index]


def test_toggle_of_a_missing_task_is_404(client: TestClient, alice: User) -> None:
    response = client.patch(alice.task_url(uuid.uuid4()) + "/complete", headers=alice.headers)

    assert response.status_code == 404
