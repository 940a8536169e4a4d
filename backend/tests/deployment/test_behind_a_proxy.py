"""Behind a proxy that serves the API under `/tasks` (uvicorn `--root-path /tasks`): every answer that names
a URL or a route takes the route's own path, and requests that keep the prefix reach nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from tests.conftest import User, stored_count
from tests.processes import ServiceProcess, running_service

ROOT_PATH = "/tasks"


@pytest.fixture(scope="module")
def proxied(database_url: str) -> Iterator[ServiceProcess]:
    with running_service(database_url, extra_args=("--root-path", ROOT_PATH), env={"LOG_FORMAT": "json"}) as service:
        yield service


@pytest.fixture
def http(proxied: ServiceProcess) -> Iterator[httpx.Client]:
    """Requests as the proxy forwards them: with `/tasks` stripped."""
    with httpx.Client(base_url=proxied.base_url, timeout=10) as client:
        yield client


def test_location_is_the_public_url_of_the_new_task(http: httpx.Client, alice: User) -> None:
    created = http.post(alice.tasks_url, json={"title": "Behind a proxy"}, headers=alice.headers)

    location = created.headers["location"]
    assert location == f"{ROOT_PATH}{alice.task_url(created.json()['id'])}"
    # The client follows it through the proxy, which strips the prefix again.
    assert http.get(location.removeprefix(ROOT_PATH), headers=alice.headers).json() == created.json()


def test_wrong_method_is_405_with_the_routes_own_methods(http: httpx.Client, alice: User) -> None:
    response = http.request("DELETE", alice.tasks_url, headers=alice.headers)

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


def test_docs_are_served_with_their_policy_and_the_prefixed_document(http: httpx.Client) -> None:
    for page in ("/docs", "/redoc"):
        response = http.get(page)
        assert response.status_code == 200
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert f"{ROOT_PATH}/openapi.json" in response.text
    document = http.get("/openapi.json").json()
    assert document["servers"] == [{"url": ROOT_PATH}]
    assert "content-security-policy" not in http.get("/openapi.json").headers


def test_logs_and_metrics_name_the_route_template(http: httpx.Client, proxied: ServiceProcess, alice: User) -> None:
    http.get(alice.tasks_url, headers={**alice.headers, "X-Request-ID": "behind-a-proxy"})

    metrics = http.get("/metrics").text
    assert 'route="/api/v1/users/{user_id}/tasks",status="200"' in metrics
    assert alice.id not in metrics
    log_lines = [json.loads(line) for line in proxied.log().splitlines() if line.startswith("{")]
    access = [line for line in log_lines if line.get("request_id") == "behind-a-proxy"]
    assert [line["route"] for line in access] == ["/api/v1/users/{user_id}/tasks"]


def test_requests_that_keep_the_prefix_reach_nothing(
    proxied: ServiceProcess, alice: User, bob: User, db: Engine
) -> None:
    """uvicorn puts the root path in front of every request path, so a request that still carries `/tasks`
    arrives as `/tasks/tasks/...`: the proxy must strip the prefix (docs/deployment.md). Whoever asks, with
    or without a token, nothing is served or stored there."""
    with httpx.Client(base_url=proxied.base_url + ROOT_PATH, timeout=10) as kept:
        for headers in ({}, alice.headers, bob.headers):
            listed = kept.get(alice.tasks_url, headers=headers)
            created = kept.post(alice.tasks_url, json={"title": "x"}, headers=headers)
            for response in (listed, created):
                assert response.status_code == 404, response.text
                assert response.headers["content-type"] == "application/problem+json"
                assert not re.search(r"\bitems\b", response.text)
    assert stored_count(db, alice.id) == 0
