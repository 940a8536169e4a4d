"""Signed keyset cursors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from src.models.task import TaskSort, TaskStatusFilter
from src.services.pagination import InvalidCursor, PagePosition, decode_cursor, encode_cursor

KEY = b"k" * 32
ALL = TaskStatusFilter.ALL


@pytest.mark.parametrize(
    ("sort", "sort_key"),
    [
        (TaskSort.NEWEST_FIRST, datetime(2026, 11, 26, 9, 30, 0, 123456, tzinfo=UTC)),
        (TaskSort.TITLE_ASCENDING, "Ünïcode ✓"),
    ],
)
def test_cursor_round_trips(sort: TaskSort, sort_key: datetime | str) -> None:
    position = PagePosition(sort_key=sort_key, task_id=uuid.uuid4())

    cursor = encode_cursor(position, key=KEY, user_id="alice", sort=sort, status=ALL)

    assert cursor.isascii()
    assert decode_cursor(cursor, key=KEY, user_id="alice", sort=sort, status=ALL) == position


def test_cursor_is_bound_to_key_user_sort_and_status() -> None:
    position = PagePosition(sort_key="a", task_id=uuid.uuid4())
    cursor = encode_cursor(position, key=KEY, user_id="alice", sort=TaskSort.TITLE_ASCENDING, status=ALL)

    for kwargs in [
        {"key": b"other" * 8, "user_id": "alice", "sort": TaskSort.TITLE_ASCENDING, "status": ALL},
        {"key": KEY, "user_id": "bob", "sort": TaskSort.TITLE_ASCENDING, "status": ALL},
        {"key": KEY, "user_id": "alice", "sort": TaskSort.TITLE_DESCENDING, "status": ALL},
        {"key": KEY, "user_id": "alice", "sort": TaskSort.TITLE_ASCENDING, "status": TaskStatusFilter.PENDING},
    ]:
        with pytest.raises(InvalidCursor):
            decode_cursor(cursor, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("cursor", ["", ".", "abc", "a.b.c", "!!!.???", "é.é", "x" * 2000 + ".y"])
def test_malformed_cursor_is_invalid(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, key=KEY, user_id="alice", sort=TaskSort.NEWEST_FIRST, status=ALL)
