"""GET one task, and GET the list: filters, sorts, keyset pagination and cursors."""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from src.core.database import Database
from src.main import create_app
from src.models import Task
from tests.conftest import User, make_token, respelled, settings_for, walk_pages

SORTS = ["-created_at", "created_at", "-updated_at", "updated_at", "title", "-title"]
STATUSES = ["all", "pending", "completed"]
SEEDED_TASKS = 240


def test_get_returns_the_task(client: TestClient, alice: User, create_task: Callable[..., dict[str, Any]]) -> None:
    task = create_task(alice, title="Read me", description="details")

    response = client.get(alice.task_url(task["id"]), headers=alice.headers)

    assert response.status_code == 200
    assert response.json() == task


def test_another_users_task_is_not_found_like_a_missing_one(
    client: TestClient, alice: User, bob: User, create_task: Callable[..., dict[str, Any]]
) -> None:
    bobs_task = create_task(bob, title="Bob's")

    through_alice = client.get(alice.task_url(bobs_task["id"]), headers=alice.headers)
    missing = client.get(alice.task_url(uuid.uuid4()), headers=alice.headers)

    assert through_alice.status_code == missing.status_code == 404
    assert _without_request_id(through_alice.json()) == _without_request_id(missing.json())
    assert through_alice.headers["content-type"] == "application/problem+json"


def _without_request_id(problem: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in problem.items() if key != "request_id"}


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "0190b8a0-0000-7000-8000-00000000000g"])
def test_malformed_task_id_is_422(client: TestClient, alice: User, bad_id: str) -> None:
    response = client.get(alice.task_url(bad_id), headers=alice.headers)

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["path", "task_id"]


def test_empty_list(client: TestClient, alice: User) -> None:
    response = client.get(alice.tasks_url, headers=alice.headers)

    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


def test_list_shows_only_the_callers_tasks(
    client: TestClient, alice: User, bob: User, create_task: Callable[..., dict[str, Any]]
) -> None:
    mine = {create_task(alice, title=f"a{i}")["id"] for i in range(3)}
    create_task(bob, title="b")

    items = client.get(alice.tasks_url, headers=alice.headers).json()["items"]

    assert {item["id"] for item in items} == mine


def test_default_order_is_newest_first_with_limit_50(
    client: TestClient, alice: User, create_task: Callable[..., dict[str, Any]]
) -> None:
    ids = [create_task(alice, title=f"t{i}")["id"] for i in range(3)]

    page = client.get(alice.tasks_url, headers=alice.headers).json()

    assert [item["id"] for item in page["items"]] == ids[::-1]


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": -1},
        {"limit": "ten"},
        {"status": "done"},
        {"sort": "due"},
        {"sort": "-id"},
        {"cursor": "x" * 2000},
    ],
)
def test_bad_list_parameters_are_422(client: TestClient, alice: User, query: dict[str, Any]) -> None:
    response = client.get(alice.tasks_url, params=query, headers=alice.headers)

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][0] == "query"


@pytest.fixture(scope="module")
def seeded_user(client: TestClient, db: Engine) -> User:
    """A user with a few hundred tasks: titles repeat (so ties break on id), some share a created_at,
    about a third are completed."""
    user_id = f"pager-{uuid.uuid4().hex[:12]}"
    rng = random.Random(7)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for index in range(SEEDED_TASKS):
        created = base + timedelta(seconds=index // 4)  # four tasks share each created_at
        completed = index % 3 == 0
        rows.append(
            {
                "id": uuid.uuid4(),
                "user_id": user_id,
                "title": "".join(rng.choices(string.ascii_lowercase[:3], k=2)),
                "description": None,
                "completed": completed,
                "completed_at": created if completed else None,
                "created_at": created,
                "updated_at": created + timedelta(seconds=rng.randrange(50)),
                "version": 1,
            }
        )
    with db.begin() as connection:
        connection.execute(insert(Task.__table__), rows)  # type: ignore[attr-defined]
    return User(id=user_id, token=make_token(user_id))


def _expected_order(tasks: list[dict[str, Any]], sort: str) -> list[str]:
    field = sort.lstrip("-")
    key = (
        (lambda t: (datetime.fromisoformat(t[field]), t["id"]))
        if field != "title"
        else (lambda t: (t["title"], t["id"]))
    )
    return [t["id"] for t in sorted(tasks, key=key, reverse=sort.startswith("-"))]


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("sort", SORTS)
def test_pages_walk_every_task_once_in_order(client: TestClient, seeded_user: User, sort: str, status: str) -> None:
    everything = [item for page in walk_pages(client, seeded_user, limit=100) for item in page]
    assert len(everything) == SEEDED_TASKS
    wanted = [t for t in everything if status == "all" or t["completed"] == (status == "completed")]

    pages = list(walk_pages(client, seeded_user, sort=sort, status=status, limit=17))
    walked = [item["id"] for page in pages for item in page]

    assert walked == _expected_order(wanted, sort)
    assert len(set(walked)) == len(walked)
    assert all(len(page) == 17 for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= 17


def test_pagination_is_stable_while_tasks_are_added(
    client: TestClient, alice: User, create_task: Callable[..., dict[str, Any]]
) -> None:
    originals = [create_task(alice, title=f"t{i}")["id"] for i in range(12)]
    pages = walk_pages(client, alice, limit=5)
    seen = [item["id"] for item in next(pages)]
    added = [create_task(alice, title=f"new{i}")["id"] for i in range(3)]
    for page in pages:
        seen.extend(item["id"] for item in page)

    assert seen == originals[::-1]
    assert not set(added) & set(seen)


def _first_cursor(client: TestClient, user: User, **params: Any) -> str:
    cursor: str = client.get(user.tasks_url, params={"limit": 1, **params}, headers=user.headers).json()["next_cursor"]
    assert cursor
    return cursor


def test_tampered_cursor_is_422(client: TestClient, seeded_user: User) -> None:
    cursor = _first_cursor(client, seeded_user)
    payload, mac = cursor.split(".")
    tampered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + mac

    for bad in [tampered, respelled(cursor), "garbage", "a.b", "....", cursor + "x", "é.é"]:
        response = client.get(seeded_user.tasks_url, params={"cursor": bad}, headers=seeded_user.headers)
        assert response.status_code == 422, bad
        assert response.json()["errors"][0]["loc"] == ["query", "cursor"]


def test_cursor_made_for_another_sort_or_status_is_422(client: TestClient, seeded_user: User) -> None:
    cursor = _first_cursor(client, seeded_user, sort="title")

    for params in [{"sort": "-title"}, {"sort": "created_at"}, {"sort": "title", "status": "completed"}]:
        response = client.get(seeded_user.tasks_url, params={**params, "cursor": cursor}, headers=seeded_user.headers)
        assert response.status_code == 422, params


def test_another_users_cursor_is_422(client: TestClient, seeded_user: User, alice: User) -> None:
    cursor = _first_cursor(client, seeded_user)

    response = client.get(alice.tasks_url, params={"cursor": cursor}, headers=alice.headers)

    assert response.status_code == 422


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_times_are_utc_whatever_the_session_time_zone(database_url: str, db: Engine) -> None:
    """A server whose time zone is UTC in winter only (London) still gives every time in UTC."""
    user = User(id=f"zoned-{uuid.uuid4().hex[:8]}", token="")
    user = User(id=user.id, token=make_token(user.id))
    instants = [datetime(2026, 1, 15, 12, 0, tzinfo=UTC), datetime(2026, 7, 15, 12, 0, tzinfo=UTC)]
    with db.begin() as connection:
        for instant in instants:
            connection.execute(
                insert(Task.__table__),  # type: ignore[attr-defined]
                {
                    "id": uuid.uuid4(),
                    "user_id": user.id,
                    "title": instant.isoformat(),
                    "completed": False,
                    "created_at": instant,
                    "updated_at": instant,
                    "version": 1,
                },
            )
    with TestClient(create_app(settings_for(database_url, db_pool_size=1))) as client:
        database: Database = client.app.state.database  # type: ignore[attr-defined]

        async def use_london_time() -> None:
            async with database.connect() as connection:
                await connection.driver.execute("SET TIME ZONE 'Europe/London'")  # type: ignore[attr-defined]

        client.portal.call(use_london_time)  # type: ignore[union-attr]
        page = client.get(user.tasks_url, params={"sort": "created_at"}, headers=user.headers).json()

    assert [item["created_at"] for item in page["items"]] == ["2026-01-15T12:00:00Z", "2026-07-15T12:00:00Z"]
