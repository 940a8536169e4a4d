"""Finishing touches FastAPI cannot express per route: the OpenAPI document a front end builds against."""

from __future__ import annotations

from typing import Any

from src.api.problems import PROBLEM_MEDIA_TYPE

BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A JWT whose `sub` is the user id in the path (`make token USER=alice` prints one locally).",
}


def finish_openapi(document: dict[str, Any], *, secured_prefix: str) -> dict[str, Any]:
    """- error responses are application/problem+json (FastAPI documents every `model` as application/json);
    - each route's one-sentence docstring becomes its summary;
    - every operation under `secured_prefix` requires the bearer token, which AuthenticationMiddleware
      enforces for exactly those paths."""
    document.setdefault("components", {}).setdefault("securitySchemes", {})["HTTPBearer"] = BEARER_SCHEME
    for path, path_item in document.get("paths", {}).items():
        for operation in path_item.values():
            if description := operation.get("description"):
                operation["summary"] = description.split("\n", 1)[0]
            if path.startswith(secured_prefix):
                operation["security"] = [{"HTTPBearer": []}]
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
    return document
