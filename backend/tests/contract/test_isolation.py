"""Each user's tasks are theirs alone, however the service is deployed.

Every test here runs against three deployments of the service, on each database:
- in process (the ASGI app itself);
- a real uvicorn started with `--root-path /tasks`, called as a proxy that strips `/tasks` calls it
  (`/api/v1/...`; uvicorn then hands the app `/tasks/api/v1/...` with root path `/tasks`);
- a real uvicorn serving the service mounted under `/tasks` in another ASGI app, called with the prefix
  kept (`/tasks/api/v1/...`).
The access rule never reads the URL (src/api/access.py), so each deployment must give the same answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx2
import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import JWT_SECRET, User, make_token, stored_count, stored_task
from tests.mounted_app import MOUNT_PREFIX
from tests.processes import MOUNTED, running_service
from tests.tokens import b64, expiry, hand_signed, with_payload

IN_PROCESS = "in-process"
BEHIND_A_STRIPPING_PROXY = "uvicorn --root-path, prefix stripped"
MOUNTED_UNDER_A_PREFIX = "mounted, prefix kept"
ROOT_PATH = "/tasks"

Api = httpx2.Client  # TestClient is one too


@pytest.fixture(scope="module", params=[IN_PROCESS, BEHIND_A_STRIPPING_PROXY, MOUNTED_UNDER_A_PREFIX])
def api(request: pytest.FixtureRequest, database_url: str, client: TestClient) -> Iterator[Api]:
    """A client whose `/api/v1/...` requests reach the service through one deployment."""
    if request.param == IN_PROCESS:
        yield client
        return
    if request.param == BEHIND_A_STRIPPING_PROXY:
        service = running_service(database_url, extra_args=("--root-path", ROOT_PATH))
        prefix = ""
    else:
        service = running_service(database_url, launcher=MOUNTED, health_path=f"{MOUNT_PREFIX}/healthz")
        prefix = MOUNT_PREFIX
    with service as running, httpx2.Client(base_url=running.base_url + prefix, timeout=10) as http:
        yield http


@pytest.fixture
def create_via(api: Api) -> Callable[..., dict[str, Any]]:
    def create(user: User, **fields: Any) -> dict[str, Any]:
        response = api.post(user.tasks_url, json={"title": "A task", **fields}, headers=user.headers)
        assert response.status_code == 201, response.text
        task: dict[str, Any] = response.json()
        return task

    return create


def _every_task_call(owner: User, task_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(method, url, body) for each task route, on `owner`'s collection."""
    task_url = owner.task_url(task_id)
    return [
        ("POST", owner.tasks_url, {"title": "x"}),
        ("GET", owner.tasks_url, None),
        ("GET", task_url, None),
        ("PUT", task_url, {"title": "x"}),
        ("PATCH", task_url, {"title": "x"}),
        ("PATCH", task_url + "/complete", None),
        ("DELETE", task_url, None),
    ]


def _assert_unauthenticated(response: httpx2.Response) -> None:
    assert response.status_code == 401, (response.request.method, response.request.url, response.text)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:tasks-api:problem:unauthenticated"


def test_the_owner_reaches_every_route(api: Api, alice: User, create_via: Callable[..., dict[str, Any]]) -> None:
    task = create_via(alice)
    for method, url, body in _every_task_call(alice, task["id"]):
        response = api.request(method, url, json=body, headers=alice.headers)
        assert response.status_code in {200, 201, 204}, (method, url, response.text)


def test_every_task_route_requires_a_token_and_stores_nothing_without_one(
    api: Api, alice: User, create_via: Callable[..., dict[str, Any]], db: Engine
) -> None:
    task = create_via(alice)
    for method, url, body in _every_task_call(alice, task["id"]):
        _assert_unauthenticated(api.request(method, url, json=body))
        _assert_unauthenticated(api.request(method, url, json=body, headers={"Authorization": "Bearer x"}))
        bad_json = {"Content-Type": "application/json"}
        _assert_unauthenticated(api.request(method, url, content=b"{bad", headers=bad_json))
    assert stored_count(db, alice.id) == 1
    assert stored_task(db, task["id"])["version"] == 1  # type: ignore[index]


@pytest.mark.parametrize(
    "authorization",
    # (HTTP strips a value's trailing space, so "Bearer " arrives as "Bearer".)
    ["", "Bearer", "Basic YWxpY2U6c2VjcmV0", "Token abc", "Bearer not.a.jwt", "Bearer a.b.c.d"],
)
def test_missing_or_malformed_authorization_is_401(api: Api, alice: User, authorization: str) -> None:
    _assert_unauthenticated(api.get(alice.tasks_url, headers={"Authorization": authorization}))


def test_token_in_query_string_is_ignored(api: Api, alice: User) -> None:
    for name in ("access_token", "token"):
        _assert_unauthenticated(api.get(alice.tasks_url, params={name: alice.token}))


def test_another_users_path_is_403_before_the_body_is_judged(api: Api, alice: User, bob: User) -> None:
    headers = {**alice.headers, "Content-Type": "application/json"}

    response = api.post(bob.tasks_url, content=b"{bad", headers=headers)

    assert response.status_code == 403
    assert response.json()["type"] == "urn:tasks-api:problem:forbidden"


def test_token_for_another_user_is_403_on_every_route_and_changes_nothing(
    api: Api, alice: User, bob: User, create_via: Callable[..., dict[str, Any]], db: Engine
) -> None:
    task = create_via(alice)
    for method, url, body in _every_task_call(alice, task["id"]):
        response = api.request(method, url, json=body, headers=bob.headers)
        assert response.status_code == 403, (method, url)
        assert response.json()["type"] == "urn:tasks-api:problem:forbidden"
    assert stored_count(db, alice.id) == 1
    assert stored_count(db, bob.id) == 0
    assert stored_task(db, task["id"])["version"] == 1  # type: ignore[index]


def test_another_users_task_is_404_on_every_route_and_unchanged(
    api: Api, alice: User, bob: User, create_via: Callable[..., dict[str, Any]], db: Engine
) -> None:
    bobs_task = create_via(bob, title="Bob's")
    calls = [call for call in _every_task_call(alice, bobs_task["id"]) if call[1] != alice.tasks_url]
    for method, url, body in calls:
        response = api.request(method, url, json=body, headers=alice.headers)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["type"] == "urn:tasks-api:problem:not-found"
    assert stored_task(db, bobs_task["id"])["version"] == 1  # type: ignore[index]


def test_a_list_holds_only_its_owners_tasks(
    api: Api, alice: User, bob: User, create_via: Callable[..., dict[str, Any]]
) -> None:
    alices = {create_via(alice)["id"] for _ in range(3)}
    create_via(bob)

    listed = api.get(alice.tasks_url, headers=alice.headers).json()["items"]

    assert {task["id"] for task in listed} == alices
    assert {task["user_id"] for task in listed} == {alice.id}


@pytest.mark.parametrize(
    "make_bad_token",
    [
        pytest.param(lambda sub: make_token(sub, lifetime=timedelta(minutes=-5)), id="expired"),
        pytest.param(lambda sub: jwt.encode({"sub": sub}, JWT_SECRET, algorithm="HS256"), id="no-exp"),
        pytest.param(lambda sub: make_token(None), id="no-sub"),
        pytest.param(lambda sub: make_token(""), id="empty-sub"),
        pytest.param(lambda sub: jwt.encode({"sub": 42, "exp": expiry()}, JWT_SECRET, algorithm="HS256"), id="int-sub"),
        pytest.param(
            lambda sub: make_token(sub, secret="another-secret-that-is-also-long-enough-000"), id="bad-signature"
        ),
        pytest.param(lambda sub: make_token(sub, nbf=expiry(timedelta(minutes=10))), id="future-nbf"),
        pytest.param(
            lambda sub: (
                b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
                + "."
                + b64(json.dumps({"sub": sub, "exp": expiry()}).encode())
                + "."
            ),
            id="alg-none",
        ),
        pytest.param(
            lambda sub: hand_signed({"alg": "HS512", "typ": "JWT"}, {"sub": sub, "exp": expiry()}, JWT_SECRET.encode()),
            id="alg-not-allowed",
        ),
        pytest.param(
            lambda sub: with_payload(make_token(sub), {"sub": sub, "exp": expiry(timedelta(days=9))}),
            id="altered-payload",
        ),
        pytest.param(lambda sub: make_token(sub)[:-3], id="truncated-signature"),
        pytest.param(lambda sub: "x" * 9000, id="huge"),
    ],
)
def test_token_attack_is_401(api: Api, alice: User, make_bad_token: Callable[[str], str]) -> None:
    token = make_bad_token(alice.id)

    _assert_unauthenticated(api.get(alice.tasks_url, headers={"Authorization": f"Bearer {token}"}))
    _assert_unauthenticated(
        api.post(alice.tasks_url, json={"title": "x"}, headers={"Authorization": f"Bearer {token}"})
    )
