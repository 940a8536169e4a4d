"""PUT (full replace) and PATCH (partial edit) of a task."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import User, stored_task

CreateTask = Callable[..., dict[str, Any]]


def test_put_replaces_every_field_and_resets_omitted_ones(
    client: TestClient, alice: User, create_task: CreateTask, db: Engine
) -> None:
    task = create_task(alice, title="Old", description="old text", completed=True)

    response = client.put(alice.task_url(task["id"]), json={"title": " New "}, headers=alice.headers)

    assert response.status_code == 200
    replaced = response.json()
    assert replaced["title"] == "New"
    assert replaced["description"] is None
    assert replaced["completed"] is False
    assert replaced["completed_at"] is None
    assert replaced["version"] == 2
    assert replaced["created_at"] == task["created_at"]
    assert replaced["updated_at"] > task["updated_at"]
    row = stored_task(db, task["id"])
    assert row is not None
    assert (row["title"], row["description"], row["completed"], row["version"]) == ("New", None, False, 2)


def test_put_requires_a_title(client: TestClient, alice: User, create_task: CreateTask, db: Engine) -> None:
    task = create_task(alice, title="Keep")

    response = client.put(alice.task_url(task["id"]), json={"description": "no title"}, headers=alice.headers)

    assert response.status_code == 422
    assert stored_task(db, task["id"])["title"] == "Keep"  # type: ignore[index]


def test_put_on_a_missing_task_is_404(client: TestClient, alice: User) -> None:
    response = client.put(alice.task_url(uuid.uuid4()), json={"title": "x"}, headers=alice.headers)

    assert response.status_code == 404


def test_patch_changes_only_the_given_fields(client: TestClient, alice: User, create_task: CreateTask) -> None:
    task = create_task(alice, title="Title", description="Keep me")

    response = client.patch(alice.task_url(task["id"]), json={"title": "Renamed"}, headers=alice.headers)

    assert response.status_code == 200
    patched = response.json()
    assert patched["title"] == "Renamed"
    assert patched["description"] == "Keep me"
    assert patched["completed"] is False
    assert patched["version"] == 2


def test_patch_description_null_clears_it(client: TestClient, alice: User, create_task: CreateTask, db: Engine) -> None:
    task = create_task(alice, description="to clear")

    patched = client.patch(alice.task_url(task["id"]), json={"description": None}, headers=alice.headers).json()

    assert patched["description"] is None
    assert stored_task(db, task["id"])["description"] is None  # type: ignore[index]


def test_completed_at_is_set_kept_and_cleared(client: TestClient, alice: User, create_task: CreateTask) -> None:
    task = create_task(alice)
    url = alice.task_url(task["id"])

    completed = client.patch(url, json={"completed": True}, headers=alice.headers).json()
    still_completed = client.patch(url, json={"completed": True, "title": "edited"}, headers=alice.headers).json()
    replaced_completed = client.put(url, json={"title": "again", "completed": True}, headers=alice.headers).json()
    reopened = client.patch(url, json={"completed": False}, headers=alice.headers).json()

    assert completed["completed_at"] is not None
    assert datetime.fromisoformat(completed["completed_at"]) == datetime.fromisoformat(completed["updated_at"])
    assert still_completed["completed_at"] == completed["completed_at"]
    assert replaced_completed["completed_at"] == completed["completed_at"]
    assert reopened["completed"] is False
    assert reopened["completed_at"] is None
    assert [t["version"] for t in (completed, still_completed, replaced_completed, reopened)] == [2, 3, 4, 5]


def test_empty_patch_changes_nothing(client: TestClient, alice: User, create_task: CreateTask) -> None:
    task = create_task(alice)

    response = client.patch(alice.task_url(task["id"]), json={}, headers=alice.headers)

    assert response.status_code == 200
    assert response.json() == task


@pytest.mark.parametrize(
    "body",
    [
        {"title": None},
        {"completed": None},
        {"title": ""},
        {"title": "x" * 201},
        {"title": "a\nb"},
        {"completed": "yes"},
        {"description": "x" * 1001},
        {"id": str(uuid.uuid4())},
        {"user_id": "mallory"},
        {"version": 10},
        {"created_at": "2020-01-01T00:00:00Z"},
        {"updated_at": "2020-01-01T00:00:00Z"},
        {"completed_at": "2020-01-01T00:00:00Z"},
    ],
)
@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_invalid_update_is_422_and_changes_nothing(
    client: TestClient, alice: User, create_task: CreateTask, db: Engine, method: str, body: dict[str, Any]
) -> None:
    task = create_task(alice, title="Stable", description="unchanged")
    before = stored_task(db, task["id"])
    full_body = {"title": "Valid", **body} if method == "PUT" and "title" not in body else body

    response = client.request(method, alice.task_url(task["id"]), json=full_body, headers=alice.headers)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert stored_task(db, task["id"]) == before


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_another_users_task_cannot_be_updated(
    client: TestClient, alice: User, bob: User, create_task: CreateTask, db: Engine, method: str
) -> None:
    bobs_task = create_task(bob, title="Bob's")
    before = stored_task(db, bobs_task["id"])

    response = client.request(method, alice.task_url(bobs_task["id"]), json={"title": "pwned"}, headers=alice.headers)

    assert response.status_code == 404
    assert stored_task(db, bobs_task["id"]) == before
