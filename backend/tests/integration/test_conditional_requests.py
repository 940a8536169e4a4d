"""ETags, If-None-Match on reads and If-Match on writes (RFC 9110)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import User, stored_task

CreateTask = Callable[..., dict[str, Any]]
WRITES = [
    ("PUT", "", {"title": "replaced"}),
    ("PATCH", "", {"title": "patched"}),
    ("PATCH", "/complete", None),
    ("DELETE", "", None),
]


def test_reads_and_writes_carry_the_version_as_a_strong_etag(
    client: TestClient, alice: User, create_task: CreateTask
) -> None:
    created = client.post(alice.tasks_url, json={"title": "t"}, headers=alice.headers)
    url = alice.task_url(created.json()["id"])

    assert created.headers["etag"] == '"1"'
    assert client.get(url, headers=alice.headers).headers["etag"] == '"1"'
    assert client.patch(url, json={"title": "u"}, headers=alice.headers).headers["etag"] == '"2"'
    assert client.put(url, json={"title": "v"}, headers=alice.headers).headers["etag"] == '"3"'
    assert client.patch(url + "/complete", headers=alice.headers).headers["etag"] == '"4"'


@pytest.mark.parametrize("if_none_match", ['"1"', 'W/"1"', '"7", "1"', "*"])
def test_if_none_match_that_matches_is_304_without_body(
    client: TestClient, alice: User, create_task: CreateTask, if_none_match: str
) -> None:
    url = alice.task_url(create_task(alice)["id"])

    response = client.get(url, headers={**alice.headers, "If-None-Match": if_none_match})

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == '"1"'


def test_if_none_match_that_does_not_match_is_200(client: TestClient, alice: User, create_task: CreateTask) -> None:
    url = alice.task_url(create_task(alice)["id"])

    response = client.get(url, headers={**alice.headers, "If-None-Match": '"2"'})

    assert response.status_code == 200
    assert response.json()["version"] == 1


# A stale version, and versions no task can have (past the 32-bit version column).
@pytest.mark.parametrize("if_match", ['"1"', '"9999999999"', '"2147483648"', '"1", "9999999999"'])
@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
def test_stale_if_match_is_412_and_changes_nothing(
    if_match: str,
    method: str,
    suffix: str,
    body: Any,
    client: TestClient,
    alice: User,
    create_task: CreateTask,
    db: Engine,
) -> None:
    task = create_task(alice)
    url = alice.task_url(task["id"])
    client.patch(url, json={"description": "moved on"}, headers=alice.headers)
    before = stored_task(db, task["id"])

    response = client.request(method, url + suffix, json=body, headers={**alice.headers, "If-Match": if_match})

    assert response.status_code == 412
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:tasks-api:problem:precondition-failed"
    assert stored_task(db, task["id"]) == before


@pytest.mark.parametrize("if_match", ['"1"', '"5", "1"', "*"])
@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
def test_current_or_any_if_match_proceeds(
    client: TestClient, alice: User, create_task: CreateTask, method: str, suffix: str, body: Any, if_match: str
) -> None:
    url = alice.task_url(create_task(alice)["id"])

    response = client.request(method, url + suffix, json=body, headers={**alice.headers, "If-Match": if_match})

    assert response.status_code == (204 if method == "DELETE" else 200)


def test_weak_tag_never_satisfies_if_match(client: TestClient, alice: User, create_task: CreateTask) -> None:
    url = alice.task_url(create_task(alice)["id"])

    response = client.patch(url, json={"title": "x"}, headers={**alice.headers, "If-Match": 'W/"1"'})

    assert response.status_code == 412


@pytest.mark.parametrize("header", ["1", '"1', "W/1", '"1" "2"', '"1",,x', '"a"b', ",", '"' + "9" * 3000 + '"'])
@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
def test_malformed_if_match_is_400_and_changes_nothing(
    client: TestClient,
    alice: User,
    create_task: CreateTask,
    db: Engine,
    method: str,
    suffix: str,
    body: Any,
    header: str,
) -> None:
    task = create_task(alice)
    before = stored_task(db, task["id"])

    response = client.request(
        method, alice.task_url(task["id"]) + suffix, json=body, headers={**alice.headers, "If-Match": header}
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert stored_task(db, task["id"]) == before


def test_malformed_if_none_match_is_400(client: TestClient, alice: User, create_task: CreateTask) -> None:
    url = alice.task_url(create_task(alice)["id"])

    assert client.get(url, headers={**alice.headers, "If-None-Match": "nope"}).status_code == 400


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
def test_access_checks_come_before_preconditions(
    client: TestClient, alice: User, bob: User, create_task: CreateTask, method: str, suffix: str, body: Any
) -> None:
    bobs_task = create_task(bob)
    stale = {"If-Match": '"99"'}

    through_alice = client.request(
        method, alice.task_url(bobs_task["id"]) + suffix, json=body, headers={**alice.headers, **stale}
    )
    on_bobs_path = client.request(
        method, bob.task_url(bobs_task["id"]) + suffix, json=body, headers={**alice.headers, **stale}
    )

    assert through_alice.status_code == 404
    assert on_bobs_path.status_code == 403


def test_concurrent_writes_with_the_same_tag_give_one_200_and_one_412(
    client: TestClient, alice: User, create_task: CreateTask, db: Engine
) -> None:
    for round_number in range(5):
        task = create_task(alice)
        url = alice.task_url(task["id"])
        barrier = threading.Barrier(2)

        def patch(title: str, url: str = url, barrier: threading.Barrier = barrier) -> int:
            barrier.wait()
            headers = {**alice.headers, "If-Match": '"1"'}
            return client.patch(url, json={"title": title}, headers=headers).status_code

        with ThreadPoolExecutor(max_workers=2) as pool:
            statuses = sorted(pool.map(patch, [f"first-{round_number}", f"second-{round_number}"]))

        assert statuses == [200, 412]
        assert stored_task(db, task["id"])["version"] == 2  # type: ignore[index]
