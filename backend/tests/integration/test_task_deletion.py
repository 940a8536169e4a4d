"""DELETE /api/v1/users/{user_id}/tasks/{task_id}"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import User, stored_task

CreateTask = Callable[..., dict[str, Any]]


def test_delete_removes_the_task(client: TestClient, alice: User, create_task: CreateTask, db: Engine) -> None:
    task = create_task(alice)

    response = client.delete(alice.task_url(task["id"]), headers=alice.headers)

    assert response.status_code == 204
    assert response.content == b""
    assert stored_task(db, task["id"]) is None
    assert client.get(alice.task_url(task["id"]), headers=alice.headers).status_code == 404


def test_second_delete_is_404(client: TestClient, alice: User, create_task: CreateTask) -> None:
    task = create_task(alice)
    client.delete(alice.task_url(task["id"]), headers=alice.headers)

    response = client.delete(alice.task_url(task["id"]), headers=alice.headers)

    assert response.status_code == 404


def test_another_users_task_cannot_be_deleted(
    client: TestClient, alice: User, bob: User, create_task: CreateTask, db: Engine
) -> None:
    bobs_task = create_task(bob)

    response = client.delete(alice.task_url(bobs_task["id"]), headers=alice.headers)

    assert response.status_code == 404
    assert stored_task(db, bobs_task["id"]) is not None


def test_delete_of_a_missing_task_is_404(client: TestClient, alice: User) -> None:
    assert client.delete(alice.task_url(uuid.uuid4()), headers=alice.headers).status_code == 404
