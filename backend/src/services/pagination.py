"""Opaque, signed keyset cursors.

A cursor carries the sort key and id of the last task on a page, the sort, status and filters it was made
for, and an HMAC over all of that plus the owner's id. The signature makes a tampered cursor, or one made
for another user, a clean 422 instead of a silently different page; binding the sort, status and filters
keeps a cursor from being replayed against a list ordered or narrowed another way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from src.core.errors import InvalidInputError
from src.models.task import TaskSort, TaskStatusFilter

_MAC_BYTES = 16
_MAX_CURSOR_LENGTH = 1024

SortKey = datetime | str | int | None


class InvalidCursor(InvalidInputError):
    def __init__(self, detail: str) -> None:
        super().__init__(detail, loc=("query", "cursor"), error_type="invalid_cursor")


@dataclass(frozen=True, slots=True)
class PagePosition:
    """Where the previous page ended: the last task's sort key (None: a task without a due date) and id."""

    sort_key: SortKey
    task_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class ListShape:
    """What a cursor is only good for: the same sort, status and filters (their digest; None without)."""

    sort: TaskSort
    status: TaskStatusFilter
    filters: str | None = None


def encode_cursor(position: PagePosition, *, key: bytes, user_id: str, shape: ListShape) -> str:
    sort_key = position.sort_key.isoformat() if isinstance(position.sort_key, datetime) else position.sort_key
    fields: dict[str, object] = {"s": shape.sort.value, "f": shape.status.value, "k": sort_key}
    fields["i"] = position.task_id.hex
    if shape.filters is not None:
        fields["q"] = shape.filters
    payload = json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode()
    return f"{_b64encode(payload)}.{_b64encode(_mac(key, user_id, payload))}"


def decode_cursor(cursor: str, *, key: bytes, user_id: str, shape: ListShape) -> PagePosition:
    if len(cursor) > _MAX_CURSOR_LENGTH or cursor.count(".") != 1:
        raise InvalidCursor("cursor is malformed")
    payload_part, mac_part = cursor.split(".")
    try:
        payload = _b64decode(payload_part)
        mac = _b64decode(mac_part)
    except (ValueError, binascii.Error):
        raise InvalidCursor("cursor is malformed") from None
    if not hmac.compare_digest(mac, _mac(key, user_id, payload)):
        raise InvalidCursor("cursor is not valid: pass the next_cursor of a previous page unchanged")
    try:
        fields = json.loads(payload)
        made_for = ListShape(TaskSort(fields["s"]), TaskStatusFilter(fields["f"]), fields.get("q"))
        task_id = uuid.UUID(hex=fields["i"])
        sort_key = _sort_key(shape.sort, fields["k"])
    except (ValueError, KeyError, TypeError):
        raise InvalidCursor("cursor is malformed") from None
    if made_for != shape:
        raise InvalidCursor("cursor was made for another sort, status or filter: start again without a cursor")
    return PagePosition(sort_key=sort_key, task_id=task_id)


def _sort_key(sort: TaskSort, raw: object) -> SortKey:
    if sort in _TEXT_SORTS and isinstance(raw, str):
        return raw
    if sort in _RANK_SORTS and type(raw) is int:
        return raw
    if sort in _DUE_SORTS and raw is None:
        return None
    if sort not in _TEXT_SORTS | _RANK_SORTS and isinstance(raw, str):
        return datetime.fromisoformat(raw)
    raise ValueError("the cursor's key does not fit its sort")


_TEXT_SORTS = frozenset({TaskSort.TITLE_ASCENDING, TaskSort.TITLE_DESCENDING})
_RANK_SORTS = frozenset({TaskSort.LOWEST_PRIORITY_FIRST, TaskSort.HIGHEST_PRIORITY_FIRST})
_DUE_SORTS = frozenset({TaskSort.DUE_SOONEST_FIRST, TaskSort.DUE_LATEST_FIRST})


def _mac(key: bytes, user_id: str, payload: bytes) -> bytes:
    message = user_id.encode("utf-8", "surrogatepass") + b"\x00" + payload
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
