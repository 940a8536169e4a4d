"""Every SQL statement the service sends about tasks is keyed by the owner's user_id."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from src.core.database import Database
from src.main import create_app
from tests.conftest import User, make_token, settings_for

TOUCHES_TASKS = re.compile(r"\btasks\b", re.IGNORECASE)


@pytest.fixture
def captured(database_url: str) -> Iterator[tuple[TestClient, list[str]]]:
    statements: list[str] = []
    with TestClient(create_app(settings_for(database_url))) as client:
        database: Database = client.app.state.database  # type: ignore[attr-defined]
        with database.statements_observed(lambda statement, _parameters: statements.append(statement)):
            yield client, statements


def test_every_statement_on_tasks_has_a_user_id_predicate(captured: tuple[TestClient, list[str]]) -> None:
    client, statements = captured
    user = User(id="scoped-user", token=make_token("scoped-user"))
    headers = {**user.headers, "Idempotency-Key": "scoping"}
    task = client.post(user.tasks_url, json={"title": "a"}, headers=headers).json()
    client.post(user.tasks_url, json={"title": "a"}, headers=headers)
    client.post(user.tasks_url, json={"title": "b"}, headers=user.headers)
    page = client.get(user.tasks_url, params={"limit": 1, "status": "pending"}, headers=user.headers).json()
    client.get(
        user.tasks_url, params={"limit": 1, "status": "pending", "cursor": page["next_cursor"]}, headers=user.headers
    )
    url = user.task_url(task["id"])
    client.get(url, headers=user.headers)
    client.put(url, json={"title": "c"}, headers=user.headers)
    client.patch(url, json={"completed": True}, headers=user.headers)
    client.patch(url, json={"title": "d"}, headers={**user.headers, "If-Match": '"1"'})
    client.patch(url + "/complete", headers=user.headers)
    client.delete(url, headers=user.headers)
    client.delete(url, headers=user.headers)

    on_tasks = [statement for statement in statements if TOUCHES_TASKS.search(statement)]
    assert len(on_tasks) >= 12
    unscoped = [statement for statement in on_tasks if "user_id" not in statement]
    assert unscoped == []
