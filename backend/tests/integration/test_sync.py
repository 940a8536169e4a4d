"""GET /api/v1/users/{user_id}/changes: a first sync, then what changed since a token."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update

from src.core.database import Connection, Database
from src.main import create_app
from src.models.sync import ChangesPage, TaskChange
from src.models.task import TaskPatch
from src.services import task_service
from src.services.sync_service import SyncToken, encode_token
from tests.conftest import User, respelled, settings_for, walk_pages

CreateTask = Callable[..., dict[str, Any]]
task_changes = TaskChange.__table__  # type: ignore[attr-defined]


def changes_url(user: User) -> str:
    return f"/api/v1/users/{user.id}/changes"


def changes(client: TestClient, user: User, **params: Any) -> dict[str, Any]:
    response = client.get(changes_url(user), params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    ChangesPage.model_validate(page)
    return page


class Replica:
    """A client's copy of the user's tasks, kept by applying each answer in order."""

    def __init__(self, client: TestClient, user: User) -> None:
        self.client, self.user = client, user
        self.tasks: dict[str, dict[str, Any]] = {}
        self.token: str | None = None

    def sync(self, limit: int = 100) -> list[dict[str, Any]]:
        """Calls until `has_more` is false; every change received, in order."""
        received = []
        while True:
            page = changes(self.client, self.user, limit=limit, **({"since": self.token} if self.token else {}))
            for change in page["changes"]:
                if change["deleted"]:
                    self.tasks.pop(change["id"], None)
                else:
                    self.tasks[change["id"]] = change["task"]
            received += page["changes"]
            self.token = page["next_token"]
            if not page["has_more"]:
                return received


def server_tasks(client: TestClient, user: User) -> dict[str, dict[str, Any]]:
    return {task["id"]: task for page in walk_pages(client, user, limit=100) for task in page}


def test_a_first_sync_pages_through_every_task(client: TestClient, alice: User, create_task: CreateTask) -> None:
    for index in range(5):
        create_task(alice, title=f"task {index}", tags=["x"] if index % 2 else [])
    replica = Replica(client, alice)

    first = changes(client, alice, limit=2)
    assert len(first["changes"]) == 2
    assert first["has_more"] is True
    replica.sync(limit=2)

    assert replica.tasks == server_tasks(client, alice)
    assert all(change["deleted"] is False for change in first["changes"])


def test_a_sync_returns_each_change_once_in_its_latest_state_oldest_first(
    client: TestClient, alice: User, create_task: CreateTask
) -> None:
    kept, edited, deleted, done = (create_task(alice, title=name) for name in ("kept", "edited", "deleted", "done"))
    replica = Replica(client, alice)
    replica.sync()

    client.patch(alice.task_url(edited["id"]), json={"title": "edited once"}, headers=alice.headers)
    client.patch(alice.task_url(done["id"]), json={"completed": True}, headers=alice.headers)
    client.delete(alice.task_url(deleted["id"]), headers=alice.headers)
    client.patch(alice.task_url(edited["id"]), json={"title": "edited twice"}, headers=alice.headers)
    created = create_task(alice, title="new")
    received = replica.sync()

    assert [change["id"] for change in received] == [done["id"], deleted["id"], edited["id"], created["id"]]
    assert received[1] == {"id": deleted["id"], "deleted": True, "task": None}
    assert received[2]["task"]["title"] == "edited twice"
    assert replica.tasks == server_tasks(client, alice)
    assert kept["id"] in replica.tasks


def test_trash_restore_and_clear_completed_reach_the_feed(
    client: TestClient, alice: User, create_task: CreateTask
) -> None:
    restored, cleared = create_task(alice, title="restored"), create_task(alice, title="cleared", completed=True)
    replica = Replica(client, alice)
    replica.sync()

    client.delete(alice.task_url(restored["id"]), headers=alice.headers)
    assert replica.sync() == [{"id": restored["id"], "deleted": True, "task": None}]
    back = client.post(f"/api/v1/users/{alice.id}/trash/{restored['id']}/restore", headers=alice.headers).json()
    assert replica.sync() == [{"id": restored["id"], "deleted": False, "task": back}]
    client.post(f"{alice.tasks_url}/clear-completed", headers=alice.headers)
    assert replica.sync() == [{"id": cleared["id"], "deleted": True, "task": None}]
    client.delete(f"/api/v1/users/{alice.id}/trash", headers=alice.headers)  # a purge changes nothing more
    assert replica.sync() == []
    assert replica.tasks == server_tasks(client, alice)


def test_polling_with_the_latest_token_returns_nothing(
    client: TestClient, alice: User, create_task: CreateTask
) -> None:
    create_task(alice)
    replica = Replica(client, alice)
    replica.sync()

    page = changes(client, alice, since=replica.token)

    assert page["changes"] == []
    assert page["has_more"] is False
    assert changes(client, alice, since=page["next_token"])["changes"] == []


def test_a_first_sync_leaves_out_deleted_tasks_and_a_later_call_reports_deletions(
    client: TestClient, alice: User, create_task: CreateTask
) -> None:
    gone, live = create_task(alice), create_task(alice)
    client.delete(alice.task_url(gone["id"]), headers=alice.headers)
    replica = Replica(client, alice)

    assert [change["id"] for change in replica.sync()] == [live["id"]]
    client.delete(alice.task_url(live["id"]), headers=alice.headers)
    # (It may also say again that `gone` is gone, which a client that never had it ignores.)
    assert replica.sync()[-1] == {"id": live["id"], "deleted": True, "task": None}
    assert replica.tasks == {}


def test_users_feeds_are_their_own(client: TestClient, alice: User, bob: User, create_task: CreateTask) -> None:
    create_task(alice)
    replica = Replica(client, bob)

    assert replica.sync() == []
    assert client.get(changes_url(alice), headers=bob.headers).status_code == 403
    assert client.get(changes_url(alice)).status_code == 401


def test_a_tampered_or_borrowed_token_is_a_422(client: TestClient, alice: User, bob: User) -> None:
    alices = changes(client, alice)["next_token"]
    payload, mac = alices.split(".")
    list_cursor_like = "eyJzIjoiLWNyZWF0ZWRfYXQifQ." + mac

    other_mac = ("B" if mac[0] == "A" else "A") + mac[1:]
    for token in (
        payload + "." + other_mac,
        payload + "." + mac[::-1],
        respelled(alices),
        list_cursor_like,
        "not-a-token",
    ):
        response = client.get(changes_url(alice), params={"since": token}, headers=alice.headers)
        assert response.status_code == 422, token
        assert response.json()["errors"][0]["loc"] == ["query", "since"]
    assert client.get(changes_url(bob), params={"since": alices}, headers=bob.headers).status_code == 422


def test_a_token_older_than_the_retention_is_a_410(client: TestClient, alice: User) -> None:
    key = client.app.state.settings.cursor_key  # type: ignore[attr-defined]

    def token(age: timedelta) -> str:
        position = SyncToken(seq=0, task_id=uuid.UUID(int=0), issued_at=datetime.now(UTC) - age)
        return encode_token(position, key=key, user_id=alice.id)

    stale, recent = token(timedelta(days=31)), token(timedelta(days=29))

    response = client.get(changes_url(alice), params={"since": stale}, headers=alice.headers)

    assert response.status_code == 410
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:tasks-api:problem:resync-required"
    assert client.get(changes_url(alice), params={"since": recent}, headers=alice.headers).status_code == 200


def test_limits_are_checked(client: TestClient, alice: User) -> None:
    for limit in (0, 1001):
        assert client.get(changes_url(alice), params={"limit": limit}, headers=alice.headers).status_code == 422


def test_deletions_are_forgotten_after_the_retention_and_only_they(
    database_url: str, client: TestClient, alice: User, bob: User, create_task: CreateTask, db: Engine
) -> None:
    old, recent, live = create_task(alice), create_task(alice), create_task(alice)
    bobs = create_task(bob)
    for user, task in ((alice, old), (alice, recent), (bob, bobs)):
        client.delete(user.task_url(task["id"]), headers=user.headers)
    long_ago = datetime.now(UTC) - timedelta(days=32)
    with db.begin() as connection:
        connection.execute(update(task_changes).values(changed_at=long_ago).where(task_changes.c.user_id == bob.id))
        connection.execute(
            update(task_changes)
            .values(changed_at=long_ago)
            .where(task_changes.c.task_id.in_([uuid.UUID(old["id"]), uuid.UUID(live["id"])]))
        )

    def remembered(user: User) -> int:
        with db.connect() as connection:
            query = select(func.count()).select_from(task_changes).where(task_changes.c.user_id == user.id)
            count: int = connection.execute(query).scalar_one()
        return count

    with TestClient(create_app(settings_for(database_url, trash_purge_interval_seconds=0.05))):
        deadline = time.monotonic() + 10
        while remembered(alice) > 2 and time.monotonic() < deadline:
            time.sleep(0.05)

    assert remembered(alice) == 2  # the recent deletion, and the live task however old its change
    assert remembered(bob) == 0
    assert [change["id"] for change in Replica(client, alice).sync()] == [live["id"]]


class _CommitWhenReleased:
    """A service connection whose commit waits for a signal: a write held in flight, its change numbered."""

    def __init__(self, connection: Connection, reached: asyncio.Event, release: asyncio.Event) -> None:
        self._connection, self._reached, self._release = connection, reached, release

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    async def commit(self) -> None:
        self._reached.set()
        await self._release.wait()
        await self._connection.commit()


def test_a_write_that_commits_after_a_sync_read_comes_in_the_next_sync(
    client: TestClient, alice: User, create_task: CreateTask
) -> None:
    task = create_task(alice, title="before")
    replica = Replica(client, alice)
    replica.sync()
    database: Database = client.app.state.database  # type: ignore[attr-defined]
    portal = client.portal
    assert portal is not None

    async def start_write() -> tuple[asyncio.Event, asyncio.Future[Any]]:
        reached, release = asyncio.Event(), asyncio.Event()

        async def write() -> None:
            async with database.connect() as connection:
                held = cast(Connection, _CommitWhenReleased(connection, reached, release))
                # With tags the write spans statements, so it is a transaction, held open before its commit.
                await task_service.patch_task(
                    connection=held,
                    user_id=alice.id,
                    task_id=uuid.UUID(task["id"]),
                    data=TaskPatch(title="late", tags=["held"]),
                )

        job = asyncio.ensure_future(write())
        await reached.wait()
        return release, job

    release, job = portal.call(start_write)
    in_flight = replica.sync()  # the write began before this read, and commits after it

    async def finish_write() -> None:
        release.set()
        await job

    portal.call(finish_write)
    after = replica.sync()

    assert in_flight == []
    assert [(change["id"], change["task"]["title"]) for change in after] == [(task["id"], "late")]
    assert replica.tasks == server_tasks(client, alice)
