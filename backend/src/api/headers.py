"""Optional request headers that routes read themselves, documented in OpenAPI as `Header()` would be.

FastAPI resolves a declared `Header()` parameter on every request, which the benchmark measured at about
7% of a get; these headers are parsed and checked by the routes anyway (a malformed one is a 400), so
the route reads the raw value and the header is documented through `openapi_extra` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


def documented(*headers: DocumentedHeader) -> dict[str, Any]:
    """`openapi_extra` for a route that reads these headers."""
    return {"parameters": [header.parameter() for header in headers]}
