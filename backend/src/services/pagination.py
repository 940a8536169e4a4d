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
from src.models.task import TaskSort

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
    """What a cursor is only good for: the same list (tasks by status, or the trash), sort and filters
    (their digest; None without)."""

    sort: str  # a TaskSort, or the trash's own order
    status: str  # a TaskStatusFilter, or TRASH
    filters: str | None = None


TRASH = "trash"


def encode_cursor(position: PagePosition, *, key: bytes, user_id: str, shape: ListShape) -> str:
    sort_key = position.sort_key.isoformat() if isinstance(position.sort_key, datetime) else position.sort_key
    fields: dict[str, object] = {"s": str(shape.sort), "f": str(shape.status), "k": sort_key}
    fields["i"] = position.task_id.hex
    if shape.filters is not None:
        fields["q"] = shape.filters
    payload = json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode()
    return seal(payload, key=key, user_id=user_id)


def decode_cursor(cursor: str, *, key: bytes, user_id: str, shape: ListShape) -> PagePosition:
    payload = unseal(cursor, key=key, user_id=user_id)
    if payload is None:
        raise InvalidCursor("cursor is not valid: pass the next_cursor of a previous page unchanged")
    try:
        fields = json.loads(payload)
        made_for = ListShape(_text(fields["s"]), _text(fields["f"]), fields.get("q"))
        task_id = uuid.UUID(hex=fields["i"])
        sort_key = _sort_key(shape.sort, fields["k"])
    except (ValueError, KeyError, TypeError):
        raise InvalidCursor("cursor is malformed") from None
    if made_for != shape:
        raise InvalidCursor("cursor was made for another sort, status or filter: start again without a cursor")
    return PagePosition(sort_key=sort_key, task_id=task_id)


def _text(raw: object) -> str:
    if not isinstance(raw, str):
        raise TypeError("not text")
    return raw


def _sort_key(sort: str, raw: object) -> SortKey:
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


def seal(payload: bytes, *, key: bytes, user_id: str) -> str:
    """`payload` with an HMAC over it and the owner's id: readable, but not forgeable or transferable."""
    return f"{_b64encode(payload)}.{_b64encode(_mac(key, user_id, payload))}"


def unseal(token: str, *, key: bytes, user_id: str) -> bytes | None:
    """The payload of a token `seal` made for this user with this key; None for anything else."""
    if len(token) > _MAX_CURSOR_LENGTH or token.count(".") != 1:
        return None
    payload_part, mac_part = token.split(".")
    try:
        payload = _b64decode(payload_part)
        mac = _b64decode(mac_part)
    except (ValueError, binascii.Error):
        return None
    return payload if hmac.compare_digest(mac, _mac(key, user_id, payload)) else None


def _mac(key: bytes, user_id: str, payload: bytes) -> bytes:
    message = user_id.encode("utf-8", "surrogatepass") + b"\x00" + payload
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Only the spelling `_b64encode` gives. Base64 decoding skips characters outside its alphabet and
    ignores the unused low bits of the last character, so other strings would pass for the same token;
    a token is given back unchanged, or refused."""
    if not text.isascii():
        raise ValueError("not base64")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64encode(raw) != text:
        raise ValueError("not the token's own spelling")
    return raw
