"""The limit the service is measured against: the thinnest honest Python HTTP stack.

A bare ASGI callable (run under uvicorn with uvloop and httptools), psycopg 3's async pool and orjson,
running the same SQL the service runs for each measured operation and answering the same JSON shape.
No framework, no validation beyond what the SQL needs, no auth, no logging:
`uvicorn bench.baseline:app --loop uvloop --http httptools`.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from uuid_utils.compat import uuid7

from bench.seed import bench_database_url
from src.models.task import TaskSort, TaskStatusFilter
from src.services.pagination import ListShape, PagePosition, encode_cursor

COLUMNS = (
    "title, description, completed, id, user_id, completed_at, created_at, updated_at, version, due_at, "
    "CASE tasks.priority WHEN 0 THEN 'none' WHEN 1 THEN 'low' WHEN 2 THEN 'medium' WHEN 3 THEN 'high' END "
    "AS priority, tags"
)
LIST_SQL = (
    f"SELECT {COLUMNS} FROM tasks WHERE tasks.user_id = %(user_id)s::VARCHAR "
    "ORDER BY tasks.created_at DESC, tasks.id DESC LIMIT %(limit)s::INTEGER"
)
GET_SQL = f"SELECT {COLUMNS} FROM tasks WHERE tasks.user_id = %(user_id)s::VARCHAR AND tasks.id = %(id)s::UUID"
INSERT_SQL = (
    "INSERT INTO tasks (title, description, completed, id, user_id, completed_at, created_at, updated_at, version, "
    "due_at, priority, tags, tag_keys, title_folded, description_folded) VALUES (%(title)s::VARCHAR, "
    "%(description)s::VARCHAR, %(completed)s, %(id)s::UUID, %(user_id)s::VARCHAR, "
    "%(completed_at)s::TIMESTAMP WITH TIME ZONE, %(created_at)s::TIMESTAMP WITH TIME ZONE, "
    "%(updated_at)s::TIMESTAMP WITH TIME ZONE, %(version)s::INTEGER, %(due_at)s::TIMESTAMP WITH TIME ZONE, "
    "%(priority_rank)s::SMALLINT, %(tags)s::TEXT[], %(tags)s::TEXT[], %(title_folded)s::TEXT, "
    "%(description_folded)s::TEXT)"
)
PATCH_SQL = (
    "UPDATE tasks SET title=%(title)s::VARCHAR, title_folded=%(title_folded)s::TEXT, "
    "updated_at=%(now)s::TIMESTAMP WITH TIME ZONE, "
    "version=(tasks.version + 1) WHERE tasks.user_id = %(user_id)s::VARCHAR AND tasks.id = %(id)s::UUID "
    f"RETURNING {COLUMNS}"
)
TOGGLE_SQL = (
    "UPDATE tasks SET completed=NOT tasks.completed, "
    "completed_at=CASE WHEN tasks.completed THEN NULL ELSE %(now)s::TIMESTAMP WITH TIME ZONE END, "
    "updated_at=%(now)s::TIMESTAMP WITH TIME ZONE, version=(tasks.version + 1) "
    f"WHERE tasks.user_id = %(user_id)s::VARCHAR AND tasks.id = %(id)s::UUID RETURNING {COLUMNS}"
)
CURSOR_KEY = os.environ.get("CURSOR_SECRET", "bench-cursor-secret-that-is-long-enough-000").encode()
JSON_HEADERS = [(b"content-type", b"application/json")]
pool: AsyncConnectionPool[AsyncConnection[DictRow]] = AsyncConnectionPool(
    bench_database_url(), min_size=10, max_size=10, open=False, kwargs={"autocommit": True, "row_factory": dict_row}
)


async def _send(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def _body(receive: Any) -> Any:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return orjson.loads(b"".join(chunks))


async def _one(sql: str, params: dict[str, Any]) -> Any:
    async with pool.connection() as connection:
        cursor = await connection.execute(sql, params)
        return await cursor.fetchone()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await pool.open(wait=True)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    parts = scope["path"].strip("/").split("/")  # api v1 users {user} tasks [{id} [complete]]
    user_id = parts[3]
    method = scope["method"]
    now = datetime.now(UTC)
    if len(parts) == 5 and method == "GET":
        async with pool.connection() as connection:
            cursor = await connection.execute(LIST_SQL, {"user_id": user_id, "limit": 51})
            rows = await cursor.fetchall()
        next_cursor = None
        if len(rows) > 50:
            last = rows[49]
            position = PagePosition(sort_key=last["created_at"], task_id=last["id"])
            shape = ListShape(TaskSort.NEWEST_FIRST, TaskStatusFilter.ALL)
            next_cursor = encode_cursor(position, key=CURSOR_KEY, user_id=user_id, shape=shape)
        await _send(send, 200, orjson.dumps({"items": rows[:50], "next_cursor": next_cursor}))
    elif len(parts) == 5 and method == "POST":
        data = await _body(receive)
        completed = bool(data.get("completed", False))
        values = {
            "title": data["title"].strip(),
            "description": data.get("description"),
            "completed": completed,
            "id": uuid7(),
            "user_id": user_id,
            "completed_at": now if completed else None,
            "created_at": now,
            "updated_at": now,
            "version": 1,
            "due_at": None,
            "priority": "none",
            "tags": [],
        }
        stored = {
            **values,
            "priority_rank": 0,
            "title_folded": values["title"].casefold(),
            "description_folded": None if values["description"] is None else values["description"].casefold(),
        }
        async with pool.connection() as connection:
            await connection.execute(INSERT_SQL, stored)
        await _send(send, 201, orjson.dumps(values))
    elif len(parts) == 6 and method == "GET":
        row = await _one(GET_SQL, {"user_id": user_id, "id": uuid.UUID(parts[5])})
        await _send(send, 200 if row else 404, orjson.dumps(row))
    elif len(parts) == 6 and method == "PATCH":
        data = await _body(receive)
        title = data["title"]
        changes = {"title": title, "title_folded": title.casefold(), "now": now}
        row = await _one(PATCH_SQL, {**changes, "user_id": user_id, "id": uuid.UUID(parts[5])})
        await _send(send, 200 if row else 404, orjson.dumps(row))
    elif len(parts) == 7 and method == "PATCH":
        row = await _one(TOGGLE_SQL, {"now": now, "user_id": user_id, "id": uuid.UUID(parts[5])})
        await _send(send, 200 if row else 404, orjson.dumps(row))
    else:
        await _send(send, 404, b'{"detail": "not found"}')
