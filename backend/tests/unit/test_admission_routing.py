"""The door that admits requests to the database (`AdmissionMiddleware`) finds the route the router will
choose, by the route's own matching, so it holds under a root path and never queues a public route."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute

from src.api.access import is_private
from src.api.route_index import route_matching
from src.main import create_app
from tests.conftest import settings_for


def _scope(method: str, path: str, root_path: str = "") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": root_path + path, "root_path": root_path, "headers": []}


@pytest.fixture(scope="module")
def routes() -> Any:
    return create_app(settings_for("sqlite+aiosqlite:///:memory:")).router.routes


@pytest.mark.parametrize("root_path", ["", "/tasks"])
@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("GET", "/api/v1/users/alice/tasks", "listTasks"),
        ("POST", "/api/v1/users/alice/tasks/clear-completed", "clearCompleted"),
        ("PATCH", "/api/v1/users/alice/tasks/0193a0e4-0000-7000-8000-000000000000/complete", "toggleTask"),
        ("GET", "/api/v1/users/alice/changes", "listChanges"),
    ],
)
def test_a_private_route_is_found_whatever_the_root_path(
    routes: Any, root_path: str, method: str, path: str, operation: str
) -> None:
    route = route_matching(routes, _scope(method, path, root_path))
    assert isinstance(route, APIRoute)
    assert route.operation_id == operation
    assert is_private(route)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json", "/docs"])
def test_public_routes_are_not_admitted(routes: Any, path: str) -> None:
    assert not is_private(route_matching(routes, _scope("GET", path)))


def test_a_path_served_only_for_other_methods_matches_no_route(routes: Any) -> None:
    assert route_matching(routes, _scope("PUT", "/api/v1/users/alice/tasks")) is None
    assert route_matching(routes, _scope("GET", "/api/v1/users/alice/nothing-here")) is None
