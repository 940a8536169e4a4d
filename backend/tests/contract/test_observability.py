"""Logs (JSON and console), Prometheus metrics, and the access line of every request."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from src.core.config import Environment, Settings
from src.core.logging import ConsoleFormatter, JsonFormatter
from src.main import create_app
from tests.conftest import User, make_token, settings_for
from tests.processes import running_service


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("src.access", logging.INFO, __file__, 1, "request", None, None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_the_request_id_and_the_record_fields() -> None:
    line = JsonFormatter().format(_record(request_id="r-1", method="GET", status=200))

    entry = json.loads(line)
    assert entry["message"] == "request"
    assert entry["level"] == "info"
    assert entry["logger"] == "src.access"
    assert entry["request_id"] == "r-1"
    assert (entry["method"], entry["status"]) == ("GET", 200)
    assert entry["time"].endswith("+00:00")


def test_json_lines_carry_exceptions_as_one_field() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record(request_id="r-2")
        record.exc_info = sys.exc_info()

    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]


def test_console_lines_are_readable() -> None:
    line = ConsoleFormatter().format(_record(request_id="r-3", route="/healthz", status=200))

    assert "[r-3] src.access: request" in line
    assert line.endswith("route=/healthz status=200")


@pytest.mark.parametrize(
    ("environment", "expected"), [(Environment.PRODUCTION, "json"), (Environment.DEVELOPMENT, "console")]
)
def test_log_format_defaults_by_environment(environment: Environment, expected: str) -> None:
    settings = Settings.model_construct(environment=environment, log_format=None)
    assert settings.effective_log_format == expected


def test_metrics_count_requests_by_route_template_and_task_operations(client: TestClient, alice: User) -> None:
    task = client.post(alice.tasks_url, json={"title": "counted"}, headers=alice.headers).json()
    client.patch(alice.task_url(task["id"]) + "/complete", headers=alice.headers)

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'tasks_api_http_requests_total{method="POST",route="/api/v1/users/{user_id}/tasks",status="201"}' in text
    assert 'tasks_api_http_request_duration_seconds_bucket{le="0.005",method="PATCH"' in text
    assert 'tasks_api_task_operations_total{operation="toggle"}' in text
    assert "tasks_api_db_pool_connections_in_use" in text
    assert "tasks_api_db_pool_connections_idle" in text
    assert alice.id not in text


def test_metrics_are_not_in_the_public_openapi(client: TestClient) -> None:
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


@pytest.fixture
def without_metrics(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(database_url, metrics_enabled=False))) as test_client:
        yield test_client


def test_metrics_can_be_switched_off(without_metrics: TestClient) -> None:
    assert without_metrics.get("/metrics").status_code == 404


def test_the_running_service_logs_json_lines_without_tokens_or_bodies(database_url: str) -> None:
    token = make_token("logged-user")
    with running_service(database_url, env={"LOG_FORMAT": "json"}) as service:
        headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "trace-42"}
        created = httpx.post(
            service.base_url + "/api/v1/users/logged-user/tasks", json={"title": "private title"}, headers=headers
        )
    log = service.log()  # after the process has stopped: the access line is written after the response

    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert any(record["logger"] == "uvicorn.error" for record in records)
    access = next(r for r in records if r["logger"] == "src.access" and r["method"] == "POST")
    assert access["request_id"] == "trace-42"
    assert access["route"] == "/api/v1/users/{user_id}/tasks"
    assert (access["method"], access["status"], access["user_id"]) == ("POST", 201, "logged-user")
    assert isinstance(access["duration_ms"], float)
    assert access["event"] == "task created"
    assert access["task_id"] == json.loads(created.text)["id"]
    assert [r for r in records if r["request_id"] == "trace-42"] == [access]  # one line for the request
    assert token not in log
    assert "private title" not in log


def test_odd_methods_do_not_become_metric_labels(client: TestClient, alice: User) -> None:
    client.request("BREW", alice.tasks_url, headers=alice.headers)

    text = client.get("/metrics").text
    assert 'method="BREW"' not in text
    assert 'method="OTHER",route="/api/v1/users/{user_id}/tasks",status="405"' in text
