"""Due dates, priorities and tags on a task: what create, PUT and PATCH accept, store and return."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import User, stored_task

CreateTask = Callable[..., dict[str, Any]]


def stored_tags(db: Engine, task_id: str) -> list[tuple[str, str]]:
    """(folded tag, spelling) rows of the task in task_tags, by folded tag."""
    with db.connect() as connection:
        rows = connection.execute(
            text("SELECT tag_key, tag FROM task_tags WHERE task_id = :id ORDER BY tag_key"),
            {"id": task_id if db.dialect.name == "postgresql" else task_id.replace("-", "")},
        ).all()
    return [(row.tag_key, row.tag) for row in rows]


def test_a_new_task_has_no_due_date_no_priority_and_no_tags(create_task: CreateTask, alice: User) -> None:
    task = create_task(alice, title="Plain")

    assert (task["due_at"], task["priority"], task["tags"]) == (None, "none", [])


def test_create_takes_a_due_date_in_any_offset_and_returns_it_in_utc(
    client: TestClient, create_task: CreateTask, alice: User, db: Engine
) -> None:
    task = create_task(alice, due_at="2026-12-05T17:30:00.25-05:00", priority="high", tags=["Work"])

    assert task["due_at"] == "2026-12-05T22:30:00.250000Z"
    assert task["priority"] == "high"
    fetched = client.get(alice.task_url(task["id"]), headers=alice.headers).json()
    assert fetched == task
    row = stored_task(db, task["id"])
    assert row is not None
    assert row["priority"] == 3


def test_tags_are_trimmed_and_case_duplicates_dropped_keeping_the_first_spelling(
    create_task: CreateTask, alice: User, db: Engine
) -> None:
    task = create_task(alice, tags=["  Work ", "home", "WORK", "Straße", "STRASSE", "école", "ÉCOLE"])

    assert task["tags"] == ["Work", "home", "Straße", "école"]
    assert stored_tags(db, task["id"]) == [
        ("home", "home"),
        ("strasse", "Straße"),
        ("work", "Work"),
        ("école", "école"),
    ]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"due_at": "2026-12-05T17:30:00"}, ["body", "due_at"]),
        ({"due_at": "2026-12-05"}, ["body", "due_at"]),
        ({"due_at": 1767225600}, ["body", "due_at"]),
        ({"due_at": "1767225600"}, ["body", "due_at"]),
        ({"due_at": "0001-01-01T00:00:00+01:00"}, ["body", "due_at"]),
        ({"priority": "urgent"}, ["body", "priority"]),
        ({"priority": None}, ["body", "priority"]),
        ({"tags": [f"t{index}" for index in range(21)]}, ["body", "tags"]),
        ({"tags": ["x" * 33]}, ["body", "tags", 0]),
        ({"tags": ["   "]}, ["body", "tags", 0]),
        ({"tags": ["a\u0007b"]}, ["body", "tags", 0]),
        ({"tags": "work"}, ["body", "tags"]),
        ({"tags": None}, ["body", "tags"]),
    ],
)
def test_bad_organisation_fields_are_422_naming_the_field(
    client: TestClient, alice: User, body: dict[str, Any], loc: list[Any]
) -> None:
    response = client.post(alice.tasks_url, json={"title": "t", **body}, headers=alice.headers)

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][: len(loc)] == loc
    assert client.get(alice.tasks_url, headers=alice.headers).json()["items"] == []


def test_twenty_tags_of_32_characters_are_accepted(create_task: CreateTask, alice: User) -> None:
    tags = [f"{index:02d}" + "x" * 30 for index in range(20)]

    assert create_task(alice, tags=tags)["tags"] == tags


def test_put_resets_omitted_organisation_fields(
    client: TestClient, create_task: CreateTask, alice: User, db: Engine
) -> None:
    task = create_task(alice, due_at="2026-12-05T17:00:00Z", priority="high", tags=["work"])

    response = client.put(alice.task_url(task["id"]), json={"title": "Again"}, headers=alice.headers)

    assert response.status_code == 200
    replaced = response.json()
    assert (replaced["due_at"], replaced["priority"], replaced["tags"], replaced["version"]) == (None, "none", [], 2)
    assert stored_tags(db, task["id"]) == []


def test_put_replaces_the_tags(client: TestClient, create_task: CreateTask, alice: User, db: Engine) -> None:
    task = create_task(alice, tags=["work", "home"])

    body = {"title": "t", "tags": ["Garden", "WORK"], "priority": "low", "due_at": "2027-01-01T00:00:00+01:00"}
    replaced = client.put(alice.task_url(task["id"]), json=body, headers=alice.headers).json()

    assert replaced["tags"] == ["Garden", "WORK"]
    assert (replaced["priority"], replaced["due_at"]) == ("low", "2026-12-31T23:00:00Z")
    assert stored_tags(db, task["id"]) == [("garden", "Garden"), ("work", "WORK")]


def test_patch_changes_only_the_given_organisation_fields(
    client: TestClient, create_task: CreateTask, alice: User
) -> None:
    task = create_task(alice, due_at="2026-12-05T17:00:00Z", priority="high", tags=["work"])

    patched = client.patch(alice.task_url(task["id"]), json={"priority": "low"}, headers=alice.headers).json()

    assert (patched["due_at"], patched["priority"], patched["tags"]) == ("2026-12-05T17:00:00Z", "low", ["work"])
    assert patched["version"] == 2
    assert patched["updated_at"] > task["updated_at"]


def test_patch_null_clears_the_due_date_and_empty_tags_clear_the_tags(
    client: TestClient, create_task: CreateTask, alice: User, db: Engine
) -> None:
    task = create_task(alice, due_at="2026-12-05T17:00:00Z", tags=["work", "home"])

    cleared = client.patch(alice.task_url(task["id"]), json={"due_at": None, "tags": []}, headers=alice.headers)

    assert cleared.status_code == 200
    assert (cleared.json()["due_at"], cleared.json()["tags"], cleared.json()["version"]) == (None, [], 2)
    assert stored_tags(db, task["id"]) == []


def test_a_refused_tag_change_keeps_the_stored_tags(
    client: TestClient, create_task: CreateTask, alice: User, db: Engine
) -> None:
    task = create_task(alice, tags=["work"])

    stale = client.patch(
        alice.task_url(task["id"]), json={"tags": ["home"]}, headers={**alice.headers, "If-Match": '"7"'}
    )

    assert stale.status_code == 412
    assert client.get(alice.task_url(task["id"]), headers=alice.headers).json()["tags"] == ["work"]
    assert stored_tags(db, task["id"]) == [("work", "work")]


def test_deleting_a_task_deletes_its_tags(client: TestClient, create_task: CreateTask, alice: User, db: Engine) -> None:
    task = create_task(alice, tags=["work", "home"])

    assert client.delete(alice.task_url(task["id"]), headers=alice.headers).status_code == 204

    assert stored_tags(db, task["id"]) == []


def test_an_idempotent_create_replays_the_organisation_fields(client: TestClient, alice: User) -> None:
    body = {"title": "t", "due_at": "2026-12-05T17:00:00+01:00", "priority": "medium", "tags": ["a", "B"]}
    headers = {**alice.headers, "Idempotency-Key": "organised-1"}

    first = client.post(alice.tasks_url, json=body, headers=headers)
    again = client.post(alice.tasks_url, json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert first.json()["due_at"] == "2026-12-05T16:00:00Z"
