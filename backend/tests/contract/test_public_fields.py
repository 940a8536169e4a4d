"""Every task the API returns carries exactly TaskPublic's fields: the service names them one by one, so a
column added to the table later reaches no client until TaskPublic lists it."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from src.models.task import TaskPublic
from tests.conftest import User

PUBLIC_FIELDS = set(TaskPublic.model_fields)


def test_every_answer_carries_exactly_the_public_fields(client: TestClient, alice: User) -> None:
    keyed = {**alice.headers, "Idempotency-Key": "public-fields"}
    created = client.post(alice.tasks_url, json={"title": "Public"}, headers=keyed)
    replayed = client.post(alice.tasks_url, json={"title": "Public"}, headers=keyed)
    url = alice.task_url(created.json()["id"])
    answers: dict[str, Any] = {
        "create": created.json(),
        "replayed create": replayed.json(),
        "get": client.get(url, headers=alice.headers).json(),
        "replace": client.put(url, json={"title": "Replaced"}, headers=alice.headers).json(),
        "update": client.patch(url, json={"description": "d"}, headers=alice.headers).json(),
        "empty update": client.patch(url, json={}, headers=alice.headers).json(),
        "toggle": client.patch(url + "/complete", headers=alice.headers).json(),
    }
    answers.update(
        {
            f"list item {n}": item
            for n, item in enumerate(client.get(alice.tasks_url, headers=alice.headers).json()["items"])
        }
    )

    assert {name: set(task) for name, task in answers.items()} == dict.fromkeys(answers, PUBLIC_FIELDS)


def test_the_documented_task_schema_admits_no_other_field(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]

    assert schemas["TaskPublic"]["additionalProperties"] is False
    assert set(schemas["TaskPublic"]["properties"]) == PUBLIC_FIELDS
    for name in ("TaskPage", "Problem", "ProblemDetailError", "HealthStatus"):
        assert schemas[name]["additionalProperties"] is False, name
