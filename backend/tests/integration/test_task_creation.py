"""POST /api/v1/users/{user_id}/tasks"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import User, make_token, stored_count, stored_task


def test_create_returns_201_with_location_and_the_stored_task(client: TestClient, alice: User, db: Engine) -> None:
    response = client.post(
        alice.tasks_url, json={"title": "  Buy milk  ", "description": "Two litres"}, headers=alice.headers
    )

    assert response.status_code == 201
    task = response.json()
    assert response.headers["location"] == alice.task_url(task["id"])
    assert response.headers["content-type"] == "application/json"
    assert task["title"] == "Buy milk"
    assert task["description"] == "Two litres"
    assert task["completed"] is False
    assert task["completed_at"] is None
    assert task["user_id"] == alice.id
    assert task["version"] == 1
    assert task["created_at"] == task["updated_at"]
    assert task["created_at"].endswith("Z")
    assert uuid.UUID(task["id"]).version == 7
    row = stored_task(db, task["id"])
    assert row is not None
    assert row["title"] == "Buy milk"
    assert row["user_id"] == alice.id
    assert row["version"] == 1


def test_create_defaults_description_to_null_and_completed_to_false(client: TestClient, alice: User) -> None:
    task = client.post(alice.tasks_url, json={"title": "Only a title"}, headers=alice.headers).json()

    assert task["description"] is None
    assert task["completed"] is False


def test_create_completed_sets_completed_at(client: TestClient, alice: User) -> None:
    task = client.post(alice.tasks_url, json={"title": "Done", "completed": True}, headers=alice.headers).json()

    assert task["completed"] is True
    assert datetime.fromisoformat(task["completed_at"]) == datetime.fromisoformat(task["created_at"])


def test_create_keeps_tab_and_newline_in_description(client: TestClient, alice: User, db: Engine) -> None:
    description = "line one\n\tline two — ünïcode ✓"
    task = client.post(alice.tasks_url, json={"title": "T", "description": description}, headers=alice.headers).json()

    assert task["description"] == description
    assert stored_task(db, task["id"])["description"] == description  # type: ignore[index]


def test_created_tasks_get_time_ordered_ids(create_task: Callable[..., dict[str, Any]], alice: User) -> None:
    ids = [create_task(alice, title=f"t{i}")["id"] for i in range(5)]

    assert ids == sorted(ids)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   \t "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "two\nlines"}, "title"),
        ({"title": "tab\there"}, "title"),
        ({"title": "nul\u0000byte"}, "title"),
        ({"title": "bell\u0007"}, "title"),
        ({"title": "line\u2028separator"}, "title"),
        ({"title": None}, "title"),
        ({"title": 42}, "title"),
        ({"title": "ok", "description": "x" * 1001}, "description"),
        ({"title": "ok", "description": "nul\u0000"}, "description"),
        ({"title": "ok", "description": "escape\u001b[31m"}, "description"),
        ({"title": "ok", "description": 7}, "description"),
        ({"title": "ok", "completed": "true"}, "completed"),
        ({"title": "ok", "completed": 1}, "completed"),
        ({"title": "ok", "completed": None}, "completed"),
        ({"title": "ok", "id": str(uuid.uuid4())}, "id"),
        ({"title": "ok", "user_id": "someone-else"}, "user_id"),
        ({"title": "ok", "version": 99}, "version"),
        ({"title": "ok", "created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ({"title": "ok", "updated_at": "2020-01-01T00:00:00Z"}, "updated_at"),
        ({"title": "ok", "completed_at": "2020-01-01T00:00:00Z"}, "completed_at"),
        ({"title": "ok", "importance": "high"}, "importance"),
    ],
)
def test_invalid_body_is_422_and_stores_nothing(
    client: TestClient, alice: User, db: Engine, body: dict[str, Any], field: str
) -> None:
    response = client.post(alice.tasks_url, json=body, headers=alice.headers)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert problem["type"] == "urn:tasks-api:problem:validation-error"
    assert any(error["loc"][-1] == field for error in problem["errors"]), problem
    assert all(set(error) == {"loc", "msg", "type"} for error in problem["errors"])
    assert stored_count(db, alice.id) == 0


@pytest.mark.parametrize(
    "raw",
    [
        b'{"title": "truncated',
        b"[]",
        b'[{"title": "in an array"}]',
        b'"just a string"',
        b"null",
        b'{"title": "ok",}',
        b'{"title": "lone \\ud800 surrogate"}',
        b'{"title": "ok", "description": "\\udfff"}',
        b'{"\\ud800": 1, "title": "ok"}',
        b'{"title": "ok", "completed": 1e999}',
        b'{"title": "ok", "completed": 123456789012345678901234567890}',
    ],
)
def test_malformed_json_is_422_problem(client: TestClient, alice: User, db: Engine, raw: bytes) -> None:
    headers = {**alice.headers, "Content-Type": "application/json"}
    response = client.post(alice.tasks_url, content=raw, headers=headers)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    json.dumps(response.json())
    assert stored_count(db, alice.id) == 0


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe{not utf-8}", b'{"title": "\xc3\x28 invalid utf-8"}', b'{"title": ' + b"[" * 5000 + b"]" * 5000 + b"}"],
)
def test_body_that_cannot_be_decoded_is_400_problem(client: TestClient, alice: User, db: Engine, raw: bytes) -> None:
    headers = {**alice.headers, "Content-Type": "application/json"}
    response = client.post(alice.tasks_url, content=raw, headers=headers)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert stored_count(db, alice.id) == 0


@pytest.mark.parametrize(
    ("content", "content_type", "expected_status"),
    [
        (b'{"title": "ok"}', "text/plain", 415),
        (b'{"title": "ok"}', None, 415),
        (b"title=ok", "application/x-www-form-urlencoded", 415),
        (b'{"title": "ok"}', "application/vnd.api+json", 201),
        (b'{"title": "ok"}', "application/json; charset=utf-8", 201),
        (b"", "application/json", 422),
    ],
)
def test_body_must_be_sent_as_json(
    client: TestClient, alice: User, db: Engine, content: bytes, content_type: str | None, expected_status: int
) -> None:
    headers = dict(alice.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = client.post(alice.tasks_url, content=content, headers=headers)

    assert response.status_code == expected_status
    if expected_status != 201:
        assert response.headers["content-type"] == "application/problem+json"
        assert stored_count(db, alice.id) == 0


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_updates_must_be_sent_as_json(
    client: TestClient, alice: User, create_task: Callable[..., dict[str, Any]], method: str
) -> None:
    task = create_task(alice)

    response = client.request(
        method,
        alice.task_url(task["id"]),
        content=b'{"title": "x"}',
        headers={**alice.headers, "Content-Type": "text/plain"},
    )

    assert response.status_code == 415
    assert response.json()["status"] == 415


def test_body_over_64_kib_is_413(client: TestClient, alice: User, db: Engine) -> None:
    body = json.dumps({"title": "big", "description": "x" * (70 * 1024)}).encode()

    response = client.post(alice.tasks_url, content=body, headers={**alice.headers, "Content-Type": "application/json"})

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 413
    assert stored_count(db, alice.id) == 0


def test_streamed_body_over_64_kib_is_413(client: TestClient, alice: User, db: Engine) -> None:
    def chunks() -> Any:
        yield b'{"title": "big", "description": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    response = client.post(
        alice.tasks_url, content=chunks(), headers={**alice.headers, "Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert stored_count(db, alice.id) == 0


def test_user_id_in_path_is_the_owner(client: TestClient, alice: User, db: Engine) -> None:
    task = client.post(alice.tasks_url, json={"title": "mine"}, headers=alice.headers).json()

    assert stored_task(db, task["id"])["user_id"] == alice.id  # type: ignore[index]


@pytest.mark.parametrize("user_id", ["a?b", "a#b", "a%b", "odd:user@example.com"])
def test_location_leads_back_to_the_task_for_any_user_id(client: TestClient, user_id: str) -> None:
    headers = {"Authorization": f"Bearer {make_token(user_id)}"}

    created = client.post(f"/api/v1/users/{quote(user_id, safe='')}/tasks", json={"title": "t"}, headers=headers)

    assert created.status_code == 201
    fetched = client.get(created.headers["location"], headers=headers)
    assert fetched.status_code == 200
    assert fetched.json() == created.json()
