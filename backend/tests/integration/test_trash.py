"""The trash: DELETE moves a task there; restore, purge, empty; clear-completed; retention."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update

from src.main import create_app
from src.models.trash import TrashPage, trashed_tasks
from tests.conftest import User, settings_for, stored_task

CreateTask = Callable[..., dict[str, Any]]


def trash_url(user: User, *parts: str) -> str:
    return "/".join([f"/api/v1/users/{user.id}/trash", *parts])


def trash_of(client: TestClient, user: User, **params: Any) -> dict[str, Any]:
    response = client.get(trash_url(user), params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    TrashPage.model_validate(page)
    return page


def listed_ids(client: TestClient, user: User, **params: Any) -> list[str]:
    response = client.get(user.tasks_url, params={"limit": 100, **params}, headers=user.headers)
    assert response.status_code == 200, response.text
    return [task["id"] for task in response.json()["items"]]


def delete(client: TestClient, user: User, task_id: str) -> None:
    assert client.delete(user.task_url(task_id), headers=user.headers).status_code == 204


def trashed_count(db: Engine, user_id: str) -> int:
    with db.connect() as connection:
        count: int = connection.execute(
            select(func.count()).select_from(trashed_tasks).where(trashed_tasks.c.user_id == user_id)
        ).scalar_one()
    return count


def backdate(db: Engine, task_id: str, deleted_at: datetime) -> None:
    with db.begin() as connection:
        connection.execute(
            update(trashed_tasks).where(trashed_tasks.c.id == uuid.UUID(task_id)).values(deleted_at=deleted_at)
        )


def tag_counts(client: TestClient, user: User) -> dict[str, int]:
    response = client.get(f"/api/v1/users/{user.id}/tags", headers=user.headers)
    assert response.status_code == 200, response.text
    return {item["tag"]: item["count"] for item in response.json()["items"]}


def test_a_deleted_task_leaves_the_lists_for_the_trash(
    client: TestClient, alice: User, create_task: CreateTask, db: Engine
) -> None:
    task = create_task(alice, tags=["Work"], priority="high", due_at="2026-12-05T17:00:00Z")
    before = datetime.now(UTC)

    delete(client, alice, task["id"])

    assert stored_task(db, task["id"]) is None
    assert client.get(alice.task_url(task["id"]), headers=alice.headers).status_code == 404
    assert client.patch(alice.task_url(task["id"]), json={"title": "x"}, headers=alice.headers).status_code == 404
    assert client.put(alice.task_url(task["id"]), json={"title": "x"}, headers=alice.headers).status_code == 404
    assert client.patch(f"{alice.task_url(task['id'])}/complete", headers=alice.headers).status_code == 404
    assert listed_ids(client, alice) == []
    assert listed_ids(client, alice, tag="work") == []
    assert tag_counts(client, alice) == {}
    [trashed] = trash_of(client, alice)["items"]
    deleted_at = trashed.pop("deleted_at")
    assert trashed == task
    assert before <= datetime.fromisoformat(deleted_at) <= datetime.now(UTC)
    assert deleted_at.endswith("Z")


def test_restore_gives_the_task_back_whole_one_version_on(
    client: TestClient, alice: User, create_task: CreateTask
) -> None:
    task = create_task(alice, description="notes", tags=["Work", "home"], priority="low", due_at="2027-01-01T00:00:00Z")
    delete(client, alice, task["id"])

    response = client.post(trash_url(alice, task["id"], "restore"), headers=alice.headers)

    assert response.status_code == 200, response.text
    restored = response.json()
    assert restored["version"] == task["version"] + 1
    assert response.headers["ETag"] == f'"{restored["version"]}"'
    assert restored["updated_at"] > task["updated_at"]
    unchanged = {name: value for name, value in task.items() if name not in {"version", "updated_at"}}
    assert {name: restored[name] for name in unchanged} == unchanged
    assert client.get(alice.task_url(task["id"]), headers=alice.headers).json() == restored
    assert listed_ids(client, alice, tag="work") == [task["id"]]
    assert tag_counts(client, alice) == {"Work": 1, "home": 1}
    assert trash_of(client, alice)["items"] == []


def test_restore_of_a_task_not_in_the_users_trash_is_404(
    client: TestClient, alice: User, bob: User, create_task: CreateTask
) -> None:
    live = create_task(alice)
    bobs = create_task(bob)
    delete(client, bob, bobs["id"])

    for task_id in (live["id"], bobs["id"], str(uuid.uuid4())):
        response = client.post(trash_url(alice, task_id, "restore"), headers=alice.headers)
        assert response.status_code == 404, task_id
        assert response.headers["content-type"] == "application/problem+json"
    assert [item["id"] for item in trash_of(client, bob)["items"]] == [bobs["id"]]
    assert client.get(alice.task_url(live["id"]), headers=alice.headers).json() == live


def test_restore_honours_if_match(client: TestClient, alice: User, create_task: CreateTask) -> None:
    task = create_task(alice)
    delete(client, alice, task["id"])
    url = trash_url(alice, task["id"], "restore")

    stale = client.post(url, headers={**alice.headers, "If-Match": '"7"'})
    assert stale.status_code == 412
    assert len(trash_of(client, alice)["items"]) == 1

    current = client.post(url, headers={**alice.headers, "If-Match": f'"{task["version"]}"'})
    assert current.status_code == 200
    assert current.json()["version"] == task["version"] + 1


def test_the_trash_is_most_recently_deleted_first_page_by_page(
    client: TestClient, alice: User, create_task: CreateTask
) -> None:
    tasks = [create_task(alice, title=f"task {index}") for index in range(5)]
    for task in tasks:
        delete(client, alice, task["id"])

    seen: list[str] = []
    page = trash_of(client, alice, limit=2)
    while True:
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        page = trash_of(client, alice, limit=2, cursor=page["next_cursor"])

    assert seen == [task["id"] for task in reversed(tasks)]


def test_a_cursor_of_the_task_list_is_refused_by_the_trash_and_the_other_way(
    client: TestClient, alice: User, create_task: CreateTask
) -> None:
    for _ in range(3):
        create_task(alice)
    for task_id in listed_ids(client, alice)[:2]:
        delete(client, alice, task_id)
    list_cursor = client.get(alice.tasks_url, params={"limit": 1}, headers=alice.headers).json()["next_cursor"]
    trash_cursor = trash_of(client, alice, limit=1)["next_cursor"]

    into_trash = client.get(trash_url(alice), params={"cursor": list_cursor}, headers=alice.headers)
    into_list = client.get(alice.tasks_url, params={"cursor": trash_cursor}, headers=alice.headers)

    assert into_trash.status_code == 422
    assert into_list.status_code == 422


def test_purge_deletes_one_task_for_good(client: TestClient, alice: User, create_task: CreateTask, db: Engine) -> None:
    kept, purged = create_task(alice), create_task(alice)
    delete(client, alice, kept["id"])
    delete(client, alice, purged["id"])

    assert client.delete(trash_url(alice, purged["id"]), headers=alice.headers).status_code == 204

    assert [item["id"] for item in trash_of(client, alice)["items"]] == [kept["id"]]
    assert client.delete(trash_url(alice, purged["id"]), headers=alice.headers).status_code == 404
    assert client.post(trash_url(alice, purged["id"], "restore"), headers=alice.headers).status_code == 404
    assert trashed_count(db, alice.id) == 1


def test_purge_of_a_live_or_another_users_task_is_404(
    client: TestClient, alice: User, bob: User, create_task: CreateTask
) -> None:
    live = create_task(alice)
    bobs = create_task(bob)
    delete(client, bob, bobs["id"])

    assert client.delete(trash_url(alice, live["id"]), headers=alice.headers).status_code == 404
    assert client.delete(trash_url(alice, bobs["id"]), headers=alice.headers).status_code == 404
    assert client.get(alice.task_url(live["id"]), headers=alice.headers).status_code == 200
    assert len(trash_of(client, bob)["items"]) == 1


def test_emptying_the_trash_purges_the_users_trashed_tasks_only(
    client: TestClient, alice: User, bob: User, create_task: CreateTask, db: Engine
) -> None:
    for _ in range(3):
        delete(client, alice, create_task(alice)["id"])
    delete(client, bob, create_task(bob)["id"])
    live = create_task(alice)

    response = client.delete(trash_url(alice), headers=alice.headers)

    assert response.status_code == 200
    assert response.json() == {"purged": 3}
    assert trashed_count(db, alice.id) == 0
    assert trashed_count(db, bob.id) == 1
    assert listed_ids(client, alice) == [live["id"]]
    assert client.delete(trash_url(alice), headers=alice.headers).json() == {"purged": 0}


def test_clear_completed_moves_every_completed_task_to_the_trash(
    client: TestClient, alice: User, bob: User, create_task: CreateTask
) -> None:
    done = [create_task(alice, title=f"done {index}", completed=True, tags=["x"]) for index in range(3)]
    pending = [create_task(alice, title=f"pending {index}") for index in range(2)]
    bobs_done = create_task(bob, completed=True)
    url = f"{alice.tasks_url}/clear-completed"

    response = client.post(url, headers=alice.headers)

    assert response.status_code == 200
    assert response.json() == {"deleted": 3}
    assert sorted(listed_ids(client, alice)) == sorted(task["id"] for task in pending)
    assert sorted(item["id"] for item in trash_of(client, alice)["items"]) == sorted(task["id"] for task in done)
    assert tag_counts(client, alice) == {}
    assert client.post(url, headers=alice.headers).json() == {"deleted": 0}
    assert listed_ids(client, bob) == [bobs_done["id"]]


def test_clear_completed_needs_the_owners_token(client: TestClient, alice: User, bob: User) -> None:
    url = f"{alice.tasks_url}/clear-completed"

    assert client.post(url).status_code == 401
    assert client.post(url, headers=bob.headers).status_code == 403


def test_a_trashed_task_past_the_retention_is_gone_before_the_purge_runs(
    client: TestClient, alice: User, create_task: CreateTask, db: Engine
) -> None:
    expired, kept = create_task(alice), create_task(alice)
    delete(client, alice, expired["id"])
    delete(client, alice, kept["id"])
    backdate(db, expired["id"], datetime.now(UTC) - timedelta(days=30, minutes=1))

    assert [item["id"] for item in trash_of(client, alice)["items"]] == [kept["id"]]
    assert client.post(trash_url(alice, expired["id"], "restore"), headers=alice.headers).status_code == 404
    assert client.delete(trash_url(alice, expired["id"]), headers=alice.headers).status_code == 404


def test_the_periodic_purge_deletes_only_expired_trashed_tasks(
    database_url: str, alice: User, bob: User, create_task: CreateTask, client: TestClient, db: Engine
) -> None:
    old = datetime.now(UTC) - timedelta(days=31)
    expired = [create_task(alice) for _ in range(3)]
    recent = create_task(alice)
    bobs_recent = create_task(bob)
    for task in expired:
        delete(client, alice, task["id"])
        backdate(db, task["id"], old)
    delete(client, alice, recent["id"])
    delete(client, bob, bobs_recent["id"])

    settings = settings_for(database_url, trash_purge_interval_seconds=0.05)
    with TestClient(create_app(settings)):
        deadline = time.monotonic() + 10
        while trashed_count(db, alice.id) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)

    assert trashed_count(db, alice.id) == 1
    assert [item["id"] for item in trash_of(client, alice)["items"]] == [recent["id"]]
    assert [item["id"] for item in trash_of(client, bob)["items"]] == [bobs_recent["id"]]
