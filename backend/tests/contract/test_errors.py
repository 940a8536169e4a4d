"""Every error is an RFC 9457 problem: unknown routes, wrong methods, unexpected failures; request ids."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from src.main import create_app
from src.services import task_service
from tests.conftest import User


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert {"type", "title", "status", "detail", "request_id"} <= set(problem)
    assert problem["status"] == 404


@pytest.mark.parametrize(
    ("method", "suffix", "allowed"),
    [
        ("POST", "/{task_id}", "DELETE, GET, PATCH, PUT"),
        ("DELETE", "", "GET, POST"),
        ("GET", "/{task_id}/complete", "PATCH"),
    ],
)
def test_wrong_method_is_405_with_every_allowed_method(
    client: TestClient, alice: User, create_task: Callable[..., Any], method: str, suffix: str, allowed: str
) -> None:
    task = create_task(alice)
    url = alice.tasks_url + suffix.format(task_id=task["id"])

    response = client.request(method, url, headers=alice.headers)

    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.headers["content-type"] == "application/problem+json"


@pytest.fixture
def failing_client(app_settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    async def explode(**_: Any) -> None:
        raise RuntimeError("secret internal detail: SELECT * FROM tasks")

    monkeypatch.setattr(task_service, "get_task", explode)
    with TestClient(create_app(app_settings), raise_server_exceptions=False) as test_client:
        yield test_client


def test_unexpected_failure_is_a_500_problem_without_details(
    failing_client: TestClient, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    response = failing_client.get(alice.task_url("0190b8a0-0000-7000-8000-000000000000"), headers=alice.headers)

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:tasks-api:problem:internal-error"
    assert "SELECT" not in response.text
    assert "Traceback" not in response.text
    assert "secret" not in response.text
    assert response.headers["x-request-id"] == problem["request_id"]
    logged = [record for record in caplog.records if record.name == "src.errors"]
    assert logged
    assert logged[0].request_id == problem["request_id"]  # type: ignore[attr-defined]


def test_request_id_is_made_or_taken_from_the_proxy(client: TestClient, alice: User) -> None:
    made = client.get(alice.tasks_url, headers=alice.headers)
    taken = client.get(alice.tasks_url, headers={**alice.headers, "X-Request-ID": "proxy-id-123"})
    refused = client.get(alice.tasks_url, headers={**alice.headers, "X-Request-ID": "bad id with spaces"})

    assert len(made.headers["x-request-id"]) == 32
    assert taken.headers["x-request-id"] == "proxy-id-123"
    assert refused.headers["x-request-id"] != "bad id with spaces"


def test_problem_carries_the_request_id(client: TestClient, alice: User) -> None:
    response = client.get(alice.tasks_url, params={"limit": 0}, headers={**alice.headers, "X-Request-ID": "trace-me"})

    assert response.json()["request_id"] == "trace-me"


def test_writes_are_logged_on_the_access_line_with_user_and_task_but_no_token_or_body(
    client: TestClient, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    task = client.post(alice.tasks_url, json={"title": "secret title"}, headers=alice.headers).json()
    client.patch(alice.task_url(task["id"]) + "/complete", headers=alice.headers)
    client.delete(alice.task_url(task["id"]), headers=alice.headers)

    access = [record.__dict__ for record in caplog.records if record.name == "src.access"]
    assert [(line["route"], line["event"]) for line in access] == [
        ("/api/v1/users/{user_id}/tasks", "task created"),
        ("/api/v1/users/{user_id}/tasks/{task_id}/complete", "task toggled"),
        ("/api/v1/users/{user_id}/tasks/{task_id}", "task deleted"),
    ]
    assert all(line["user_id"] == alice.id and line["task_id"] == task["id"] for line in access)
    assert access[1]["completed"] is True
    text = caplog.text
    assert alice.token not in text
    assert "secret title" not in text


ECHO_MARKER = "¤marker¤"


@pytest.mark.parametrize(
    ("method", "where", "request_kwargs"),
    [
        ("POST", "", {"json": {"title": ECHO_MARKER * 100}}),
        ("POST", "", {"json": {"title": "x", "completed": ECHO_MARKER}}),
        ("POST", "", {"json": {"title": "x", "unknown": ECHO_MARKER}}),
        ("POST", "", {"json": {"title": ECHO_MARKER, "description": 3}}),
        ("GET", "/{marker}", {}),
        ("GET", "", {"params": {"limit": ECHO_MARKER}}),
        ("GET", "", {"params": {"sort": ECHO_MARKER}}),
        ("GET", "", {"params": {"status": ECHO_MARKER}}),
        ("GET", "", {"params": {"cursor": ECHO_MARKER}}),
        ("PATCH", "/{task_id}", {"json": {"title": "x"}, "headers": {"If-Match": ECHO_MARKER.encode()}}),
        ("POST", "", {"json": {"title": "x"}, "headers": {"Idempotency-Key": ECHO_MARKER.encode()}}),
    ],
)
def test_problem_bodies_never_echo_the_request(
    client: TestClient,
    alice: User,
    create_task: Callable[..., Any],
    method: str,
    where: str,
    request_kwargs: dict[str, Any],
) -> None:
    """A problem says where the input is wrong, never what it was: so hostile input cannot reach the
    response, and no character the service cannot encode turns a 4xx into a 500."""
    task = create_task(alice)
    url = alice.tasks_url + where.format(task_id=task["id"], marker=ECHO_MARKER)
    options = dict(request_kwargs)
    headers = {**alice.headers, **options.pop("headers", {})}

    response = client.request(method, url, headers=headers, **options)

    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "¤" not in response.text
    for error in response.json().get("errors", []):
        assert set(error) == {"loc", "msg", "type"}
