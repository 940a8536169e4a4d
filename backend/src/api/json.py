"""JSON responses rendered by orjson straight from the service's records: one pass from rows to bytes.

The routes still declare their pydantic `response_model`, which documents the shape in OpenAPI; the
suite checks every response against it (schemathesis and the contract tests)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

JSON_MEDIA_TYPE = "application/json"


def json_response(content: Any, *, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    # OPT_UTC_Z writes UTC times as "...Z", as pydantic does; UUIDs and datetimes serialise natively.
    body = orjson.dumps(content, option=orjson.OPT_UTC_Z)
    return Response(body, status_code=status_code, media_type=JSON_MEDIA_TYPE, headers=headers)
