"""/healthz and /readyz"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from src.main import create_app
from tests.conftest import make_token, settings_for


def test_healthz_is_200(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_200_when_the_schema_is_at_head(client: TestClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_readyz_is_503_when_the_schema_is_behind(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
        assert client.get("/healthz").status_code == 200

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"]
    assert "migrations" in response.json()["detail"]


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    settings = settings_for("postgresql+psycopg://postgres@127.0.0.1:9/nowhere", db_connect_timeout_seconds=1)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
        alive = client.get("/healthz")

    assert ready.status_code == 503
    assert alive.status_code == 200


def test_requests_get_503_with_retry_after_when_the_database_is_unreachable() -> None:
    settings = settings_for("postgresql+psycopg://postgres@127.0.0.1:9/nowhere", db_connect_timeout_seconds=1)
    with TestClient(create_app(settings)) as client:
        response = client.get("/api/v1/users/alice/tasks", headers={"Authorization": f"Bearer {make_token('alice')}"})

    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.headers["content-type"] == "application/problem+json"
