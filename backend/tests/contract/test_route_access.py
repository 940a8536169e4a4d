"""Every route is private unless declared public: routes added to a test app later, without thought."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from src.api.access import GuardedRoute, PublicRoute
from src.core.config import Settings
from src.main import create_app
from tests.conftest import User


@pytest.fixture
def app(app_settings: Settings) -> FastAPI:
    return create_app(app_settings)


def test_a_route_added_to_the_app_later_is_private(app: FastAPI, alice: User, bob: User) -> None:
    @app.get("/api/v1/users/{user_id}/notes")
    async def notes(user_id: str) -> dict[str, Any]:
        return {"owner": user_id}

    @app.post("/api/v1/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    with TestClient(app) as client:
        assert client.get(f"/api/v1/users/{alice.id}/notes").status_code == 401
        assert client.get(f"/api/v1/users/{alice.id}/notes", headers=bob.headers).status_code == 403
        assert client.get(f"/api/v1/users/{alice.id}/notes", headers=alice.headers).json() == {"owner": alice.id}
        # A private route whose path names no user needs an authenticated caller, whoever it is.
        assert client.post("/api/v1/echo", json={"a": 1}).status_code == 401
        assert (
            client.post("/api/v1/echo", content=b"{bad", headers={"Content-Type": "application/json"}).status_code
            == 401
        )
        assert client.post("/api/v1/echo", json={"a": 1}, headers=bob.headers).json() == {"a": 1}


def test_a_route_declared_public_answers_anyone(app: FastAPI) -> None:
    router = APIRouter(route_class=PublicRoute)

    @router.get("/api/v1/status")
    async def status() -> dict[str, str]:
        return {"status": "open"}

    app.include_router(router)
    with TestClient(app) as client:
        assert client.get("/api/v1/status").json() == {"status": "open"}
        assert client.get("/api/v1/status", headers={"Authorization": "Bearer not-a-token"}).status_code == 200


def test_a_private_router_included_later_is_private(app: FastAPI, alice: User) -> None:
    router = APIRouter(prefix="/api/v1/users/{user_id}/labels", route_class=GuardedRoute)

    @router.get("")
    async def labels(user_id: str) -> list[str]:
        return [user_id]

    app.include_router(router, prefix="/extra")
    with TestClient(app) as client:
        assert client.get(f"/extra/api/v1/users/{alice.id}/labels").status_code == 401
        assert client.get(f"/extra/api/v1/users/{alice.id}/labels", headers=alice.headers).json() == [alice.id]


def test_the_service_refuses_to_start_with_a_route_that_is_neither_guarded_nor_public(app: FastAPI) -> None:
    plain = APIRouter()

    @plain.get("/api/v1/users/{user_id}/plain")
    async def plain_route(user_id: str) -> str:
        return user_id

    app.include_router(plain)

    async def starlette_endpoint(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("open")

    app.add_route("/raw", starlette_endpoint)

    with pytest.raises(RuntimeError, match="neither guarded nor declared public") as refused, TestClient(app):
        pass
    assert "/api/v1/users/{user_id}/plain" in str(refused.value)
    assert "/raw" in str(refused.value)


def test_the_public_routes_are_the_probes_the_metrics_and_the_docs(client: TestClient) -> None:
    """A new public route is a decision: this list changes with it."""
    app: Any = client.app
    public = {
        context.path
        for context in iter_route_contexts(app.routes)
        if not isinstance(context.original_route, GuardedRoute) or context.original_route.public
    }
    assert public == {
        "/openapi.json",
        "/static-offline-docs",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/healthz",
        "/readyz",
        "/metrics",
    }


def test_the_task_routes_are_the_apps_first_routes(client: TestClient) -> None:
    """Matched once and before the docs routes (src/main.py): the app takes them through FastAPI's `routes`
    argument, which a FastAPI upgrade could drop or reorder."""
    app: Any = client.app
    first = app.routes[:8]

    assert all(isinstance(route, GuardedRoute) and not route.public for route in first)
    assert {route.path for route in first} == {
        "/api/v1/users/{user_id}/tasks",
        "/api/v1/users/{user_id}/tasks/{task_id}",
        "/api/v1/users/{user_id}/tasks/{task_id}/complete",
        "/api/v1/users/{user_id}/tasks/clear-completed",
    }
