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


def finish_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """- error responses are application/problem+json (FastAPI documents every `model` as application/json);
    - parameters are listed path, query, header, and an optional one is left out, never null, and its
      description is not repeated in its schema;
    - each route's one-sentence docstring becomes its summary;
    - the bearer scheme that every private route declares (src/api/access.py) is defined."""
    document.setdefault("components", {}).setdefault("securitySchemes", {})["HTTPBearer"] = BEARER_SCHEME
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if "parameters" in operation:
                # Parameters a route reads itself come through openapi_extra, after FastAPI's: put them in
                # FastAPI's order (path, query, header), keeping each group's own order.
                operation["parameters"].sort(key=lambda parameter: _LOCATIONS.index(parameter["in"]))
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _parameter_schema(parameter)
            if description := operation.get("description"):
                operation["summary"] = description.split("\n", 1)[0]
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
    return document


_NULL = {"type": "null"}
_LOCATIONS = ["path", "query", "header", "cookie"]


def _parameter_schema(parameter: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents an optional `str | None` parameter as `anyOf: [string, null]`, but a header or
    query value is text on the wire: a client sends a string or leaves the parameter out. The generated
    title and the copy of the parameter's description are dropped, so a standard header such as
    If-Match is a plain string whose syntax its name defines."""
    schema = {key: value for key, value in parameter.get("schema", {}).items() if key not in ("title", "description")}
    variants = schema.get("anyOf", [])
    if not parameter.get("required") and _NULL in variants and len(variants) == 2:
        (value,) = (variant for variant in variants if variant != _NULL)
        schema = {**{key: item for key, item in schema.items() if key != "anyOf"}, **value}
    return schema
