"""POST with Idempotency-Key: retries replay, never duplicate."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select, text

from src.main import create_app
from src.models import IdempotencyRecord
from tests.conftest import User, settings_for, stored_count

records = IdempotencyRecord.__table__  # type: ignore[attr-defined]


def _post(client: TestClient, user: User, body: dict[str, Any], key: str) -> Any:
    return client.post(user.tasks_url, json=body, headers={**user.headers, "Idempotency-Key": key})


def test_retry_with_the_same_key_and_body_replays_the_first_201(client: TestClient, alice: User, db: Engine) -> None:
    key = str(uuid.uuid4())
    first = _post(client, alice, {"title": "Pay rent"}, key)
    retry = _post(client, alice, {"title": "Pay rent"}, key)

    assert first.status_code == retry.status_code == 201
    assert retry.content == first.content
    for header in ("location", "etag", "content-type"):
        assert retry.headers[header] == first.headers[header]
    assert stored_count(db, alice.id) == 1


def test_retry_replays_the_stored_response_even_after_the_task_changed(
    client: TestClient, alice: User, db: Engine
) -> None:
    key = "retry-after-edit"
    first = _post(client, alice, {"title": "Original"}, key)
    client.patch(first.headers["location"], json={"title": "Edited"}, headers=alice.headers)

    retry = _post(client, alice, {"title": "Original"}, key)

    assert retry.status_code == 201
    assert retry.json() == first.json()
    assert stored_count(db, alice.id) == 1


def test_same_key_with_another_body_is_422_and_creates_nothing(client: TestClient, alice: User, db: Engine) -> None:
    _post(client, alice, {"title": "One"}, "k-1")

    response = _post(client, alice, {"title": "Two"}, "k-1")

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert response.json()["errors"][0]["type"] == "idempotency_key_reused"
    assert stored_count(db, alice.id) == 1


def test_keys_are_scoped_per_user(client: TestClient, alice: User, bob: User, db: Engine) -> None:
    mine = _post(client, alice, {"title": "Same"}, "shared-key")
    theirs = _post(client, bob, {"title": "Same"}, "shared-key")

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert stored_count(db, bob.id) == 1


@pytest.mark.parametrize("key", [b"", b"x" * 256, b"has space", b"tab\tkey", "ü-key".encode()])
def test_malformed_key_is_400_and_creates_nothing(client: TestClient, alice: User, db: Engine, key: bytes) -> None:
    headers = [*((name.encode(), value.encode()) for name, value in alice.headers.items()), (b"Idempotency-Key", key)]

    response = client.post(alice.tasks_url, json={"title": "x"}, headers=headers)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert stored_count(db, alice.id) == 0


def test_concurrent_retries_create_one_task(client: TestClient, alice: User, db: Engine) -> None:
    def send(_: int) -> Any:
        return _post(client, alice, {"title": "Tapped five times"}, "double-tap")

    with ThreadPoolExecutor(max_workers=5) as pool:
        responses = list(pool.map(send, range(5)))

    created = [response for response in responses if response.status_code == 201]
    assert created
    assert {response.json()["id"] for response in created} == {created[0].json()["id"]}
    assert all(response.status_code in {201, 409} for response in responses)
    assert stored_count(db, alice.id) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_retry_while_the_first_is_in_flight_is_409(client: TestClient, alice: User, db: Engine) -> None:
    """PostgreSQL only: SQLite serialises writers, so there a retry waits for the first request and replays it."""
    key = "in-flight"
    with db.connect() as holder:
        # Hold the same lock a first request holds while it runs.
        holder.execute(text("SELECT pg_advisory_lock(hashtextextended(:scope, 0))"), {"scope": f"{alice.id} {key}"})
        response = _post(client, alice, {"title": "x"}, key)
        holder.execute(text("SELECT pg_advisory_unlock_all()"))

    assert response.status_code == 409
    assert response.headers["retry-after"]
    assert response.json()["type"] == "urn:tasks-api:problem:conflict"
    assert stored_count(db, alice.id) == 0
    assert _post(client, alice, {"title": "x"}, key).status_code == 201


def _store_expired_key(db: Engine, user: User, key: str) -> None:
    past = datetime.now(UTC) - timedelta(days=2)
    with db.begin() as connection:
        connection.execute(
            insert(records).values(
                user_id=user.id,
                key=key,
                request_fingerprint="0" * 64,
                task_id=uuid.uuid4(),
                response_body="{}",
                created_at=past,
                expires_at=past + timedelta(days=1),
            )
        )


def test_expired_key_is_a_new_key(client: TestClient, alice: User, db: Engine) -> None:
    _store_expired_key(db, alice, "old-key")

    response = _post(client, alice, {"title": "fresh"}, "old-key")

    assert response.status_code == 201
    assert stored_count(db, alice.id) == 1


def test_expired_keys_are_purged(database_url: str, alice: User, db: Engine) -> None:
    _store_expired_key(db, alice, "to-purge")
    settings = settings_for(database_url, idempotency_purge_interval_seconds=0.05)

    with TestClient(create_app(settings)):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with db.connect() as connection:
                left = connection.execute(select(records.c.key).where(records.c.user_id == alice.id)).all()
            if not left:
                break
            time.sleep(0.05)

    assert left == []
