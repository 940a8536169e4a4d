"""The change feed misses nothing while others write: clients create, edit, toggle, delete, restore and
clear completed tasks through a real service (uvicorn, two worker processes, PostgreSQL) while another
client syncs in a loop, a few changes a page; once the writers stop and the syncing client has caught
up, its copy equals the task list exactly, field for field."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import make_token
from tests.processes import ServiceProcess, running_service

pytestmark = pytest.mark.slow

WRITERS = 4
WRITING_SECONDS = 6.0


@pytest.fixture
def service(database_url: str) -> Iterator[ServiceProcess]:
    with running_service(database_url, extra_args=("--workers", "2")) as running:
        yield running


def _write_until(stop: threading.Event, base_url: str, user_id: str, headers: dict[str, str], seed: int) -> list[str]:
    """Random writes on the user's tasks until told to stop; the unexpected answers, if any."""
    rng = random.Random(seed)
    tasks = f"{base_url}/api/v1/users/{user_id}/tasks"
    trash = f"{base_url}/api/v1/users/{user_id}/trash"
    unexpected: list[str] = []
    known: list[str] = []
    with httpx.Client(headers=headers, timeout=10) as http:
        while not stop.is_set():
            roll = rng.random()
            if roll < 0.3 or not known:
                response = http.post(tasks, json={"title": f"task {rng.random():.6f}", "tags": ["sync"]})
                if response.status_code == 201:
                    known.append(response.json()["id"])
            elif roll < 0.5:
                response = http.patch(f"{tasks}/{rng.choice(known)}", json={"title": f"edit {rng.random():.6f}"})
            elif roll < 0.65:
                response = http.patch(f"{tasks}/{rng.choice(known)}/complete")
            elif roll < 0.8:
                response = http.delete(f"{tasks}/{rng.choice(known)}")
            elif roll < 0.95:
                response = http.post(f"{trash}/{rng.choice(known)}/restore")
            else:
                response = http.post(f"{tasks}/clear-completed")
            # 404: the task was in the trash (or back out of it) by another writer's hand.
            if response.status_code not in {200, 201, 204, 404}:
                unexpected.append(f"{response.request.method} {response.request.url}: {response.status_code}")
    return unexpected


def _sync(http: httpx.Client, url: str, replica: dict[str, Any], token: str | None) -> tuple[str, bool]:
    params: dict[str, Any] = {"limit": 7, **({"since": token} if token else {})}
    response = http.get(url, params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    for change in page["changes"]:
        if change["deleted"]:
            replica.pop(change["id"], None)
        else:
            replica[change["id"]] = change["task"]
    return page["next_token"], page["has_more"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_client_that_syncs_while_others_write_ends_with_exactly_the_tasks(service: ServiceProcess) -> None:
    user_id = f"syncing-{random.randrange(1 << 32):08x}"
    headers = {"Authorization": f"Bearer {make_token(user_id)}"}
    stop = threading.Event()
    results: list[list[str]] = []
    writers = [
        threading.Thread(
            target=lambda seed=seed: results.append(_write_until(stop, service.base_url, user_id, headers, seed))
        )
        for seed in range(WRITERS)
    ]
    for writer in writers:
        writer.start()
    replica: dict[str, Any] = {}
    token: str | None = None
    calls = 0
    with httpx.Client(headers=headers, timeout=10) as http:
        url = f"{service.base_url}/api/v1/users/{user_id}/changes"
        deadline = time.monotonic() + WRITING_SECONDS
        while time.monotonic() < deadline:
            token, _ = _sync(http, url, replica, token)
            calls += 1
        stop.set()
        for writer in writers:
            writer.join()
        has_more = True
        while has_more:
            token, has_more = _sync(http, url, replica, token)

        listed: dict[str, Any] = {}
        cursor = None
        while True:
            page = http.get(
                f"{service.base_url}/api/v1/users/{user_id}/tasks",
                params={"limit": 100, **({"cursor": cursor} if cursor else {})},
            ).json()
            listed.update((task["id"], task) for task in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break

    assert [answer for answers in results for answer in answers] == []
    assert calls > 20
    assert len(listed) > 20
    assert replica == listed
