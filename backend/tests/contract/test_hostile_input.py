"""Hostile headers and tokens on writes: always a 4xx problem, never a change to stored data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import User, make_token, stored_task

LONG = "x" * 100_000


@pytest.mark.parametrize(
    ("header", "value", "status"),
    [
        ("Authorization", "Bearer " + LONG, 401),
        ("Authorization", LONG, 401),
        ("If-Match", '"' + LONG + '"', 400),
        ("Idempotency-Key", LONG, 400),
        ("Content-Type", "application/" + LONG, 415),
    ],
)
def test_over_long_header_values_are_4xx_and_change_nothing(
    client: TestClient,
    alice: User,
    create_task: Callable[..., dict[str, Any]],
    db: Engine,
    header: str,
    value: str,
    status: int,
) -> None:
    task = create_task(alice)
    before = stored_task(db, task["id"])
    headers = {**alice.headers, "Content-Type": "application/json", header: value}
    method, url = ("POST", alice.tasks_url) if header == "Idempotency-Key" else ("PATCH", alice.task_url(task["id"]))

    response = client.request(method, url, content=b'{"title": "changed"}', headers=headers)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert stored_task(db, task["id"]) == before


def test_over_long_request_id_is_replaced(client: TestClient, alice: User) -> None:
    response = client.get(alice.tasks_url, headers={**alice.headers, "X-Request-ID": LONG})

    assert response.status_code == 200
    assert len(response.headers["x-request-id"]) <= 128


BAD_TOKENS: dict[str, Callable[[str], str]] = {
    "expired": lambda sub: make_token(sub, lifetime=timedelta(minutes=-5)),
    "no-exp": lambda sub: jwt.encode({"sub": sub}, "test-secret-that-is-long-enough-for-hs256-0123456789"),
    "wrong-secret": lambda sub: make_token(sub, secret="some-other-secret-that-is-long-enough-000"),
    "no-sub": lambda sub: make_token(None),
}


@pytest.mark.parametrize("token_kind", sorted(BAD_TOKENS))
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("PUT", "", {"title": "x"}), ("PATCH", "", {"title": "x"}), ("PATCH", "/complete", None), ("DELETE", "", None)],
)
def test_bad_tokens_cannot_change_a_task(
    client: TestClient,
    alice: User,
    create_task: Callable[..., dict[str, Any]],
    db: Engine,
    token_kind: str,
    method: str,
    suffix: str,
    body: Any,
) -> None:
    task = create_task(alice)
    before = stored_task(db, task["id"])
    headers = {"Authorization": f"Bearer {BAD_TOKENS[token_kind](alice.id)}"}

    response = client.request(method, alice.task_url(task["id"]) + suffix, json=body, headers=headers)

    assert response.status_code == 401
    assert stored_task(db, task["id"]) == before
