"""When every database connection is busy: a request waits a bounded time, then gets a 503 problem with
Retry-After; a request without credentials or with a method the route does not serve is not queued (its
401 or 405 comes at once); the probes still answer, and readiness does not take a busy instance for a
dead one."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from fastapi.testclient import TestClient

from src.main import create_app
from tests.conftest import User, make_token, settings_for

ACQUIRE_TIMEOUT_SECONDS = 0.3


@pytest.fixture
def one_connection_client(database_url: str) -> Iterator[TestClient]:
    settings = settings_for(
        database_url, db_pool_size=1, db_max_overflow=0, db_acquire_timeout_seconds=ACQUIRE_TIMEOUT_SECONDS
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_request_that_cannot_get_a_connection_in_time_is_a_503_and_the_probes_answer(
    database_url: str, one_connection_client: TestClient
) -> None:
    client = one_connection_client
    user_id = f"busy-{uuid.uuid4().hex[:8]}"
    user = User(id=user_id, token=make_token(user_id))
    task = client.post(user.tasks_url, json={"title": "locked"}, headers=user.headers).json()
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")

    with psycopg.connect(conninfo) as holder, ThreadPoolExecutor(max_workers=1) as pool:
        # The row is locked, so an edit of it holds the service's only connection until the lock goes.
        holder.execute("SELECT 1 FROM tasks WHERE id = %s FOR UPDATE", [uuid.UUID(task["id"])])
        edit = pool.submit(client.patch, user.task_url(task["id"]), json={"title": "edited"}, headers=user.headers)
        time.sleep(0.5)
        started = time.monotonic()
        refused = client.get(user.tasks_url, headers=user.headers)
        waited = time.monotonic() - started
        started = time.monotonic()
        anonymous = client.get(user.tasks_url)
        anonymous_waited = time.monotonic() - started
        not_allowed = client.put(user.tasks_url, json={}, headers=user.headers)  # a 405 needs no connection
        alive = client.get("/healthz")
        ready = client.get("/readyz")
        ready_with_token = client.get("/readyz", headers=user.headers)  # a public route never queues
        holder.rollback()
        edited = edit.result(timeout=10)

    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"]
    assert refused.json()["type"] == "urn:tasks-api:problem:service-unavailable"
    assert refused.json()["request_id"] == refused.headers["x-request-id"]
    assert ACQUIRE_TIMEOUT_SECONDS <= waited < ACQUIRE_TIMEOUT_SECONDS + 2
    assert anonymous.status_code == 401
    assert anonymous_waited < ACQUIRE_TIMEOUT_SECONDS
    assert not_allowed.status_code == 405
    assert alive.status_code == 200
    assert ready.status_code == 200
    assert ready_with_token.status_code == 200
    assert edited.status_code == 200
    assert client.get(user.tasks_url, headers=user.headers).status_code == 200
