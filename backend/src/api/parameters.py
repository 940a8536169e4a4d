"""Request headers, path and query parameters that routes read themselves, documented in OpenAPI as
FastAPI's `Header()`, `Path()` and `Query()` would be.

FastAPI resolves each declared parameter on every request, with a look at its type annotations each
time: a declared `Header()` measured about 7% of a get, the two path parameters of a task's URL 72 k
instructions (6%). So a route reads these from the request, a path parameter validated by pydantic
against the same constraints (a bad one is the same 422 problem, `loc` `["path", name]`), and they are
documented through `openapi_extra` instead (src/api/openapi.py puts them back in FastAPI's order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request


@dataclass(frozen=True)
class DocumentedHeader:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    examples: dict[str, Any] | None = None

    def value(self, request: Request) -> str | None:
        return request.headers.get(self.name)

    def parameter(self) -> dict[str, Any]:
        """The OpenAPI parameter object, a new one for each use (the document is finished in place)."""
        parameter: dict[str, Any] = {
            "name": self.name,
            "in": "header",
            "required": False,
            "schema": dict(self.schema),
            "description": self.description,
        }
        if self.examples is not None:
            parameter["examples"] = dict(self.examples)
        return parameter


@dataclass(frozen=True)
class PathParameter:
    """A path parameter of type `annotation` (an `Annotated` type whose metadata holds its constraints)."""

    name: str
    annotation: Any
    description: str

    @cached_property
    def _adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.annotation)

    def value(self, request: Request) -> Any:
        try:
            return self._adapter.validate_python(request.path_params[self.name])
        except ValidationError as error:
            errors = [{**detail, "loc": ("path", self.name, *detail["loc"])} for detail in error.errors()]
            raise RequestValidationError(errors) from None

    def parameter(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "path",
            "required": True,
            "schema": self._adapter.json_schema(),
            "description": self.description,
        }


@dataclass(frozen=True)
class QueryParameter:
    """An optional query parameter of type `annotation`, read only when the request gives it (so a list
    without filters pays nothing for them); `repeated` reads every occurrence (`?tag=a&tag=b`) as a list,
    which `annotation` (a list type) validates."""

    name: str
    annotation: Any
    description: str
    repeated: bool = False
    example: Any = None

    @cached_property
    def _adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.annotation)

    def value(self, request: Request) -> Any:
        given = request.query_params.getlist(self.name) if self.repeated else request.query_params.get(self.name)
        if given is None or given == []:
            return given
        try:
            return self._adapter.validate_python(given)
        except ValidationError as error:
            errors = [{**detail, "loc": ("query", self.name, *detail["loc"])} for detail in error.errors()]
            raise RequestValidationError(errors) from None

    def parameter(self) -> dict[str, Any]:
        parameter: dict[str, Any] = {
            "name": self.name,
            "in": "query",
            "required": False,
            "schema": self._schema(),
            "description": self.description,
        }
        if self.example is not None:
            parameter["example"] = self.example
        return parameter

    def _schema(self) -> dict[str, Any]:
        # Enums and models are the document's components, not definitions inside a parameter.
        schema = self._adapter.json_schema(ref_template="#/components/schemas/{model}")
        schema.pop("$defs", None)
        return schema


def documented(*parameters: DocumentedHeader | PathParameter | QueryParameter) -> dict[str, Any]:
    """`openapi_extra` for a route that reads these headers and path parameters."""
    return {"parameters": [parameter.parameter() for parameter in parameters]}
