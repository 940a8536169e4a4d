"""CORS: browsers on the configured origins may call the API and read ETag, Location and X-Request-ID."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from src.main import create_app
from tests.conftest import User, settings_for

FRONT_END = "https://app.example"


@pytest.fixture
def cors_client(database_url: str) -> Iterator[TestClient]:
    settings = settings_for(database_url, cors_origins=f"{FRONT_END}, https://admin.example")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_preflight_from_an_allowed_origin_is_answered_without_a_token(cors_client: TestClient, alice: User) -> None:
    response = cors_client.options(
        alice.task_url("0190b8a0-0000-7000-8000-000000000000"),
        headers={
            "Origin": FRONT_END,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, content-type, if-match, idempotency-key",
        },
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == FRONT_END
    assert "PATCH" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert all(name in allowed for name in ("authorization", "if-match", "idempotency-key"))


def test_responses_expose_etag_location_and_request_id(cors_client: TestClient, alice: User) -> None:
    response = cors_client.post(alice.tasks_url, json={"title": "x"}, headers={**alice.headers, "Origin": FRONT_END})

    assert response.status_code == 201
    assert response.headers["access-control-allow-origin"] == FRONT_END
    exposed = response.headers["access-control-expose-headers"].lower()
    assert {"etag", "location", "x-request-id"} <= {name.strip() for name in exposed.split(",")}


def test_other_origins_get_no_cors_headers(cors_client: TestClient, alice: User) -> None:
    response = cors_client.get(alice.tasks_url, headers={**alice.headers, "Origin": "https://evil.example"})

    assert "access-control-allow-origin" not in response.headers


def test_no_origins_are_allowed_by_default(client: TestClient, alice: User) -> None:
    response = client.get(alice.tasks_url, headers={**alice.headers, "Origin": FRONT_END})

    assert "access-control-allow-origin" not in response.headers
