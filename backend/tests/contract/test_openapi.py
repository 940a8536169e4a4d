"""The OpenAPI document and the docs pages a front-end developer builds against."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from src.core.config import BACKEND_DIR


@pytest.fixture(scope="module")
def openapi(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


TASK_OPERATIONS = [
    ("/api/v1/users/{user_id}/tasks", "post", "201"),
    ("/api/v1/users/{user_id}/tasks", "get", "200"),
    ("/api/v1/users/{user_id}/tasks/{task_id}", "get", "200"),
    ("/api/v1/users/{user_id}/tasks/{task_id}", "put", "200"),
    ("/api/v1/users/{user_id}/tasks/{task_id}", "patch", "200"),
    ("/api/v1/users/{user_id}/tasks/{task_id}/complete", "patch", "200"),
    ("/api/v1/users/{user_id}/tasks/{task_id}", "delete", "204"),
    ("/api/v1/users/{user_id}/tasks/clear-completed", "post", "200"),
    ("/api/v1/users/{user_id}/trash", "get", "200"),
    ("/api/v1/users/{user_id}/trash/{task_id}/restore", "post", "200"),
    ("/api/v1/users/{user_id}/trash/{task_id}", "delete", "204"),
    ("/api/v1/users/{user_id}/trash", "delete", "200"),
]


@pytest.mark.parametrize(("path", "method", "success"), TASK_OPERATIONS)
def test_task_operations_declare_success_errors_and_security(
    openapi: dict[str, Any], path: str, method: str, success: str
) -> None:
    operation = openapi["paths"][path][method]

    assert operation["summary"]
    assert operation["security"] == [{"HTTPBearer": []}]
    assert success in operation["responses"]
    expected_errors = {"401", "403", "413", "422", "500", "503"} | ({"404"} if "{task_id}" in path else set())
    bodiless = path.endswith(("/complete", "/clear-completed", "/restore"))
    if method in {"post", "put", "patch"} and not bodiless:
        expected_errors.add("415")
    assert expected_errors <= set(operation["responses"])
    for status in expected_errors:
        content = operation["responses"][status]["content"]
        assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_create_documents_the_location_header(openapi: dict[str, Any]) -> None:
    created = openapi["paths"]["/api/v1/users/{user_id}/tasks"]["post"]["responses"]["201"]

    assert "Location" in created["headers"]
    assert created["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TaskPublic"}


def test_schemas_have_examples_and_forbid_unknown_fields(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]

    for name in ("TaskCreate", "TaskReplace", "TaskPatch"):
        assert schemas[name]["additionalProperties"] is False
        assert schemas[name]["examples"]
    assert schemas["TaskPublic"]["examples"]
    assert openapi["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_their_assets_from_the_service(client: TestClient, page: str) -> None:
    html = client.get(page).text
    assets = re.findall(r"""(?:src|href)=["']([^"']+\.(?:js|css))["']""", html)

    assert assets
    assert not re.search(r"https?://", " ".join(assets))
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_served_schema_matches_the_committed_openapi_json(openapi: dict[str, Any]) -> None:
    committed = json.loads((BACKEND_DIR / "openapi.json").read_text())

    assert openapi == committed, "the API contract changed: run `make openapi` and commit backend/openapi.json"
