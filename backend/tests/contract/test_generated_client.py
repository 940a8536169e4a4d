"""A client generated from the committed openapi.json drives the running service, as a front-end team would use it.

openapi-python-client reads the contract without a warning, names one function per operation id (`create_task`,
`list_tasks`...), and its typed models parse every answer, problem documents included."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from http import HTTPStatus
from typing import Any

import pytest

from src.core.config import BACKEND_DIR
from tests.conftest import make_token
from tests.processes import running_service

PACKAGE = "tasks_api_client"
# The generator runs ruff over its output by default: the test should not depend on which ruff is on PATH.
GENERATOR_CONFIG: dict[str, list[str]] = {"post_hooks": []}

Generated = Callable[[str], Any]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    """Imports a module of the client generated from the committed contract, e.g. `api.tasks.create_task`."""
    root = tmp_path_factory.mktemp("generated-client")
    config = root / "openapi-python-client.json"
    config.write_text(json.dumps(GENERATOR_CONFIG))
    command = [sys.executable, "-m", "openapi_python_client", "generate", "--fail-on-warning", "--meta", "none"]
    command += ["--path", str(BACKEND_DIR / "openapi.json"), "--config", str(config)]
    command += ["--output-path", str(root / PACKAGE)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(root))
    try:
        yield lambda name: importlib.import_module(f"{PACKAGE}.{name}")
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def test_operations_are_named_after_their_operation_ids(generated: Generated) -> None:
    def operations(tag: str) -> set[str]:
        return {module.name for module in pkgutil.iter_modules(generated(f"api.{tag}").__path__)}

    assert operations("tasks") == {
        "create_task",
        "list_tasks",
        "get_task",
        "replace_task",
        "update_task",
        "toggle_task",
        "delete_task",
        "list_tags",
        "clear_completed",
    }
    assert operations("trash") == {"list_trash", "restore_task", "purge_task", "empty_trash"}
    assert operations("sync") == {"list_changes"}
    assert operations("health") == {"check_liveness", "check_readiness"}


def test_every_sort_order_has_a_name(generated: Generated) -> None:
    sorts = generated("models").TaskSort

    assert {member.name: member.value for member in sorts} == {
        "NEWEST_FIRST": "-created_at",
        "OLDEST_FIRST": "created_at",
        "RECENTLY_UPDATED_FIRST": "-updated_at",
        "LEAST_RECENTLY_UPDATED_FIRST": "updated_at",
        "TITLE_ASCENDING": "title",
        "TITLE_DESCENDING": "-title",
        "DUE_SOONEST_FIRST": "due_at",
        "DUE_LATEST_FIRST": "-due_at",
        "LOWEST_PRIORITY_FIRST": "priority",
        "HIGHEST_PRIORITY_FIRST": "-priority",
    }


def test_the_generated_client_drives_the_running_service(database_url: str, generated: Generated) -> None:
    client_module, models = generated("client"), generated("models")
    check_liveness, check_readiness = generated("api.health.check_liveness"), generated("api.health.check_readiness")
    create_task, list_tasks = generated("api.tasks.create_task"), generated("api.tasks.list_tasks")
    get_task, replace_task = generated("api.tasks.get_task"), generated("api.tasks.replace_task")
    update_task, toggle_task = generated("api.tasks.update_task"), generated("api.tasks.toggle_task")
    delete_task = generated("api.tasks.delete_task")
    user_id = f"generated-{uuid.uuid4().hex[:12]}"

    with (
        running_service(database_url) as service,
        client_module.AuthenticatedClient(
            base_url=service.base_url, token=make_token(user_id), raise_on_unexpected_status=True
        ) as client,
    ):
        assert check_liveness.sync(client=client) == models.HealthStatus(status="ok")
        assert check_readiness.sync(client=client) == models.HealthStatus(status="ready")

        created = create_task.sync_detailed(user_id, client=client, body=models.TaskCreate(title="First"))
        assert created.status_code == HTTPStatus.CREATED
        first = created.parsed
        assert isinstance(first, models.TaskPublic)
        assert isinstance(first.id, uuid.UUID)
        assert isinstance(first.created_at, datetime)
        assert first.created_at.tzinfo is not None
        assert created.headers["location"].endswith(f"/tasks/{first.id}")
        others = [
            create_task.sync(user_id, client=client, body=models.TaskCreate(title=title, description="notes"))
            for title in ("Second", "Third")
        ]

        oldest_first = {"sort": models.TaskSort.OLDEST_FIRST, "status": models.TaskStatusFilter.PENDING, "limit": 2}
        page_one = list_tasks.sync(user_id, client=client, **oldest_first)
        assert isinstance(page_one, models.TaskPage)
        assert len(page_one.items) == 2
        assert isinstance(page_one.next_cursor, str)
        page_two = list_tasks.sync(user_id, client=client, **oldest_first, cursor=page_one.next_cursor)
        assert len(page_two.items) == 1
        assert page_two.next_cursor is None
        assert [task.id for task in page_one.items + page_two.items] == [task.id for task in [first, *others]]

        assert get_task.sync(user_id, first.id, client=client) == first

        replaced = replace_task.sync(
            user_id, first.id, client=client, body=models.TaskReplace(title="Replaced", description="all new")
        )
        assert (replaced.title, replaced.description, replaced.version) == ("Replaced", "all new", 2)

        updated = update_task.sync(user_id, first.id, client=client, body=models.TaskPatch(title="Edited"))
        assert (updated.title, updated.description, updated.completed) == ("Edited", "all new", False)

        toggled = toggle_task.sync(user_id, first.id, client=client)
        assert toggled.completed is True
        assert isinstance(toggled.completed_at, datetime)

        assert delete_task.sync_detailed(user_id, first.id, client=client).status_code == HTTPStatus.NO_CONTENT

        deleted = _problem(models, get_task.sync_detailed(user_id, first.id, client=client), HTTPStatus.NOT_FOUND)
        assert deleted.type_ == "urn:tasks-api:problem:not-found"
        unknown = _problem(models, get_task.sync_detailed(user_id, uuid.uuid4(), client=client), HTTPStatus.NOT_FOUND)
        assert unknown.type_ == "urn:tasks-api:problem:not-found"
        blank_title = create_task.sync_detailed(user_id, client=client, body=models.TaskCreate(title="   "))
        invalid_body = _problem(models, blank_title, HTTPStatus.UNPROCESSABLE_ENTITY)
        assert invalid_body.type_ == "urn:tasks-api:problem:validation-error"
        assert [error.loc for error in invalid_body.errors] == [["body", "title"]]
        empty_page = list_tasks.sync_detailed(user_id, client=client, limit=0)
        invalid_query = _problem(models, empty_page, HTTPStatus.UNPROCESSABLE_ENTITY)
        assert invalid_query.type_ == "urn:tasks-api:problem:validation-error"
        assert [error.loc for error in invalid_query.errors] == [["query", "limit"]]


def _problem(models: Any, response: Any, status: HTTPStatus) -> Any:
    """The response's parsed `Problem`, after checking it is the RFC 9457 document for `status`."""
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.parsed
    assert isinstance(problem, models.Problem)
    assert problem.status == status
    assert problem.request_id == response.headers["x-request-id"]
    return problem
