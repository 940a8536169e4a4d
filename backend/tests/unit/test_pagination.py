"""Signed keyset cursors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from src.models.task import TaskSort, TaskStatusFilter
from src.services.pagination import InvalidCursor, ListShape, PagePosition, SortKey, decode_cursor, encode_cursor

KEY = b"k" * 32
ALL = TaskStatusFilter.ALL


@pytest.mark.parametrize(
    ("sort", "sort_key"),
    [
        (TaskSort.NEWEST_FIRST, datetime(2026, 11, 26, 9, 30, 0, 123456, tzinfo=UTC)),
        (TaskSort.TITLE_ASCENDING, "Ünïcode ✓"),
        (TaskSort.DUE_SOONEST_FIRST, datetime(2026, 12, 5, 17, 0, tzinfo=UTC)),
        (TaskSort.DUE_LATEST_FIRST, None),
        (TaskSort.HIGHEST_PRIORITY_FIRST, 3),
        (TaskSort.LOWEST_PRIORITY_FIRST, 0),
    ],
)
def test_cursor_round_trips(sort: TaskSort, sort_key: SortKey) -> None:
    position = PagePosition(sort_key=sort_key, task_id=uuid.uuid4())
    shape = ListShape(sort, ALL, "filters")

    cursor = encode_cursor(position, key=KEY, user_id="alice", shape=shape)

    assert cursor.isascii()
    assert decode_cursor(cursor, key=KEY, user_id="alice", shape=shape) == position


def test_cursor_is_bound_to_key_user_sort_status_and_filters() -> None:
    position = PagePosition(sort_key="a", task_id=uuid.uuid4())
    shape = ListShape(TaskSort.TITLE_ASCENDING, ALL, None)
    cursor = encode_cursor(position, key=KEY, user_id="alice", shape=shape)

    for key, user_id, other in [
        (b"other" * 8, "alice", shape),
        (KEY, "bob", shape),
        (KEY, "alice", ListShape(TaskSort.TITLE_DESCENDING, ALL, None)),
        (KEY, "alice", ListShape(TaskSort.TITLE_ASCENDING, TaskStatusFilter.PENDING, None)),
        (KEY, "alice", ListShape(TaskSort.TITLE_ASCENDING, ALL, "some filters")),
    ]:
        with pytest.raises(InvalidCursor):
            decode_cursor(cursor, key=key, user_id=user_id, shape=other)


@pytest.mark.parametrize(
    ("sort", "sort_key"),
    [(TaskSort.NEWEST_FIRST, None), (TaskSort.TITLE_ASCENDING, None), (TaskSort.HIGHEST_PRIORITY_FIRST, "3")],
)
def test_a_signed_cursor_whose_key_does_not_fit_its_sort_is_invalid(sort: TaskSort, sort_key: SortKey) -> None:
    shape = ListShape(sort, ALL)
    cursor = encode_cursor(PagePosition(sort_key=sort_key, task_id=uuid.uuid4()), key=KEY, user_id="a", shape=shape)

    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, key=KEY, user_id="a", shape=shape)


@pytest.mark.parametrize("cursor", ["", ".", "abc", "a.b.c", "!!!.???", "é.é", "x" * 2000 + ".y"])
def test_malformed_cursor_is_invalid(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, key=KEY, user_id="alice", shape=ListShape(TaskSort.NEWEST_FIRST, ALL))
