"""Entity tags and conditional requests (RFC 9110 section 13), from a task's version.

A task's strong ETag is its version in quotes (`"3"`). `If-Match` holds the versions a write may
apply to (strong comparison: weak tags never match, `*` matches any existing task); `If-None-Match`
on a read uses weak comparison.
"""

from __future__ import annotations

import re

from fastapi import HTTPException, Request

from src.api.parameters import DocumentedHeader

_ENTITY_TAG = re.compile(r'[ \t]*(W/)?"([\x21\x23-\x7e]*)"[ \t]*(?:,|$)')
_MAX_HEADER_LENGTH = 2048
_MAX_VERSION_DIGITS = 10
_MAX_VERSION = 2**31 - 1

IF_MATCH = DocumentedHeader(
    "If-Match",
    description="Apply the change only if the task's ETag is one of these (or `*`); else 412.",
    examples={"current version": {"value": '"3"'}},
)
IF_NONE_MATCH = DocumentedHeader(
    "If-None-Match", description="Answer 304 with no body if the task's ETag is one of these."
)


def etag_of(version: int) -> str:
    return f'"{version}"'


def _entity_tags(header: str, name: str) -> list[tuple[bool, str]] | None:
    """(weak, opaque tag) pairs, or None for `*`; a malformed header is a 400."""
    if len(header) > _MAX_HEADER_LENGTH:
        raise HTTPException(400, detail=f"{name} is too long.")
    if header.strip() == "*":
        return None
    tags: list[tuple[bool, str]] = []
    position = 0
    while position < len(header):
        match = _ENTITY_TAG.match(header, position)
        if match is None or match.end() == position:
            raise HTTPException(400, detail=f"{name} must be `*` or a comma-separated list of quoted entity tags.")
        tags.append((match.group(1) is not None, match.group(2)))
        position = match.end()
    if not tags:
        raise HTTPException(400, detail=f"{name} is empty.")
    return tags


def _version_in(opaque: str) -> int | None:
    """The version a tag names; None for a tag no task can have (versions are 32-bit integers)."""
    if opaque.isdigit() and len(opaque) <= _MAX_VERSION_DIGITS and int(opaque) <= _MAX_VERSION:
        return int(opaque)
    return None


def expected_versions(request: Request) -> frozenset[int] | None:
    """The versions a write may apply to, from its If-Match; None when any will do (no header, or `*`)."""
    if_match = IF_MATCH.value(request)
    if if_match is None:
        return None
    tags = _entity_tags(if_match, "If-Match")
    if tags is None:
        return None
    return frozenset(v for weak, opaque in tags if not weak and (v := _version_in(opaque)) is not None)


def none_match(if_none_match: str | None, version: int) -> bool:
    """True when an If-None-Match header matches the current version, so a read answers 304."""
    if if_none_match is None:
        return False
    tags = _entity_tags(if_none_match, "If-None-Match")
    return tags is None or any(_version_in(opaque) == version for _weak, opaque in tags)
