"""The list query: one keyset page of a user's tasks in a given order, narrowed by filters.

Every order has its index (`user_id`, [`completed`,] key, `id`), so a page is an index range scan after
the cursor's position. Tasks without a due date come after the dated ones in both due-date orders: a
due-date list is two ranges of the same index, the dated tasks, then the undated ones by id, and a page
that crosses from one to the other reads the second range only for the rows it still needs.

Filters narrow the range. On PostgreSQL the planner picks, from the values, between reading the order's
index and skipping what does not match (a common tag, a frequent word) and reading only the matches
through their own index (a rare tag, a rare word, a narrow due window), then ordering those few rows: so a
filtered statement is planned for its values each time it runs, not once for all values.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Label,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    exists,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY

from src.models.task import PRIORITY_RANKS, SEARCHED_TEXT, Task, TaskPriority, TaskSort, TaskStatusFilter, TaskTag, fold

tasks: Table = Task.__table__  # type: ignore[attr-defined]
task_tags: Table = TaskTag.__table__  # type: ignore[attr-defined]

SORT_COLUMNS: dict[TaskSort, tuple[str, bool]] = {
    TaskSort.NEWEST_FIRST: ("created_at", True),
    TaskSort.OLDEST_FIRST: ("created_at", False),
    TaskSort.RECENTLY_UPDATED_FIRST: ("updated_at", True),
    TaskSort.LEAST_RECENTLY_UPDATED_FIRST: ("updated_at", False),
    TaskSort.TITLE_ASCENDING: ("title", False),
    TaskSort.TITLE_DESCENDING: ("title", True),
    TaskSort.DUE_SOONEST_FIRST: ("due_at", False),
    TaskSort.DUE_LATEST_FIRST: ("due_at", True),
    TaskSort.LOWEST_PRIORITY_FIRST: ("priority", False),
    TaskSort.HIGHEST_PRIORITY_FIRST: ("priority", True),
}

OWNER_ID = bindparam("owner_id", type_=tasks.c.user_id.type)

# What a task read or write returns: TaskPublic's fields, named one by one, so a column added to the table
# later (a deletion time, a search column) reaches no client until TaskPublic lists it.
PUBLIC_FIELDS = (
    "title",
    "description",
    "completed",
    "id",
    "user_id",
    "completed_at",
    "created_at",
    "updated_at",
    "version",
    "due_at",
    "priority",
    "tags",
)


def public_columns(table: Table) -> tuple[ColumnElement[Any], ...]:
    """PUBLIC_FIELDS from `table` (tasks, or the trash), the stored priority rank named by the database, so
    rows go to JSON as they come."""
    priority_name: Label[Any] = literal_column(
        f"CASE {table.name}.priority "
        + " ".join(f"WHEN {rank} THEN '{priority.value}'" for priority, rank in PRIORITY_RANKS.items())
        + " END"
    ).label("priority")
    # Labelled, so that a row's keys are plain str whatever the table's column objects hold.
    return tuple(priority_name if name == "priority" else table.c[name].label(name) for name in PUBLIC_FIELDS)


PUBLIC_COLUMNS = public_columns(tasks)

PRIORITY_SLOTS = len(TaskPriority)
# Spelt as the search index spells it, so that PostgreSQL matches the two.
_SEARCHED: ColumnElement[str] = literal_column(f"({SEARCHED_TEXT})", Text())


def like_pattern(term: str) -> str:
    """A LIKE pattern matching `term` anywhere, in which `%`, `_` and `\\` are ordinary characters."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class TaskFilters:
    """What a list is narrowed to; every part is optional and they combine with AND."""

    priorities: frozenset[TaskPriority] = frozenset()
    tags: tuple[str, ...] = ()  # folded, distinct
    due_before: datetime | None = None
    due_after: datetime | None = None
    terms: tuple[str, ...] = ()  # folded, distinct

    @classmethod
    def of(
        cls,
        *,
        priorities: list[TaskPriority] | None = None,
        tags: list[str] | None = None,
        due_before: datetime | None = None,
        due_after: datetime | None = None,
        query: str | None = None,
    ) -> TaskFilters:
        return cls(
            priorities=frozenset(priorities or ()),
            tags=tuple(dict.fromkeys(fold(tag) for tag in tags or ())),
            due_before=due_before,
            due_after=due_after,
            terms=tuple(dict.fromkeys(fold(query or "").split())),
        )

    @property
    def shape(self) -> tuple[bool, int, bool, bool, int]:
        """Which filters are given (and how many tags and terms): what the statement's text depends on."""
        has_due = (self.due_before is not None, self.due_after is not None)
        return (bool(self.priorities), len(self.tags), *has_due, len(self.terms))

    @property
    def any(self) -> bool:
        return self != NO_FILTERS

    @property
    def has_due_window(self) -> bool:
        return self.due_before is not None or self.due_after is not None

    def digest(self) -> str | None:
        """A short fingerprint of the filters, which a cursor carries; None without filters."""
        if not self.any:
            return None
        canonical = {
            "p": sorted(PRIORITY_RANKS[priority] for priority in self.priorities),
            "t": sorted(self.tags),
            "b": None if self.due_before is None else self.due_before.isoformat(),
            "a": None if self.due_after is None else self.due_after.isoformat(),
            "q": sorted(self.terms),
        }
        encoded = json.dumps(canonical, separators=(",", ":"), ensure_ascii=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:24]

    def parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.priorities:
            ranks = sorted(PRIORITY_RANKS[priority] for priority in self.priorities)
            params.update({f"priority_{slot}": ranks[min(slot, len(ranks) - 1)] for slot in range(PRIORITY_SLOTS)})
        if self.tags:
            params["tag_keys"] = list(self.tags)
            params.update({f"tag_{index}": tag for index, tag in enumerate(self.tags)})
        if self.due_before is not None:
            params["due_before"] = self.due_before
        if self.due_after is not None:
            params["due_after"] = self.due_after
        params.update({f"term_{index}": like_pattern(term) for index, term in enumerate(self.terms)})
        return params


NO_FILTERS = TaskFilters()


class Segment(Enum):
    """The part of the user's tasks a statement ranges over: all of them, or for a due-date order, the
    dated ones or the undated ones."""

    ALL = "all"
    DATED = "dated"
    UNDATED = "undated"


def _filter_clauses(dialect: str, shape: tuple[bool, int, bool, bool, int]) -> list[ColumnElement[bool]]:
    has_priorities, tag_count, has_before, has_after, term_count = shape
    clauses: list[ColumnElement[bool]] = []
    if has_priorities:
        clauses.append(tasks.c.priority.in_([bindparam(f"priority_{slot}") for slot in range(PRIORITY_SLOTS)]))
    if tag_count and dialect == "postgresql":
        # One condition on the task's own row, whose selectivity PostgreSQL estimates from the array's
        # statistics: it reads the order's index for a common tag, the GIN index for a rare one.
        contains = tasks.c.tag_keys.op("@>", is_comparison=True)
        clauses.append(contains(bindparam("tag_keys", type_=ARRAY(Text()))))
        tag_count = 0
    for index in range(tag_count):
        clauses.append(
            exists().where(
                task_tags.c.task_id == tasks.c.id,
                task_tags.c.user_id == OWNER_ID,
                task_tags.c.tag_key == bindparam(f"tag_{index}", type_=task_tags.c.tag_key.type),
            )
        )
    if has_before:
        clauses.append(tasks.c.due_at < bindparam("due_before", type_=tasks.c.due_at.type))
    if has_after:
        clauses.append(tasks.c.due_at >= bindparam("due_after", type_=tasks.c.due_at.type))
    for index in range(term_count):
        clauses.append(_SEARCHED.like(bindparam(f"term_{index}", type_=Text()), escape="\\"))
    return clauses


@lru_cache(maxsize=512)
def list_statement(
    dialect: str,
    sort: TaskSort,
    status: TaskStatusFilter,
    filter_shape: tuple[bool, int, bool, bool, int],
    segment: Segment,
    after_cursor: bool,
) -> Select[Any]:
    """SELECT the public fields of one page: parameters `owner_id`, `limit`, `completed` (with a status),
    `after_key` and `after_id` (after a cursor; `after_id` only in the undated segment), and the filters'."""
    column_name, descending = SORT_COLUMNS[sort]
    # The undated tasks all share a null key: they are ordered, and continued, by id alone.
    keys = [tasks.c.id] if segment is Segment.UNDATED else [tasks.c[column_name], tasks.c.id]
    conditions: list[ColumnElement[bool]] = [tasks.c.user_id == OWNER_ID]
    if status is not TaskStatusFilter.ALL:
        conditions.append(tasks.c.completed == bindparam("completed", type_=tasks.c.completed.type))
    if segment is Segment.DATED:
        conditions.append(tasks.c.due_at.is_not(None))
    elif segment is Segment.UNDATED:
        conditions.append(tasks.c.due_at.is_(None))
    if after_cursor:
        boundary = [bindparam("after_id", type_=tasks.c.id.type)]
        if segment is not Segment.UNDATED:
            boundary.insert(0, bindparam("after_key", type_=tasks.c[column_name].type))
        position, after = (tuple_(*keys), tuple_(*boundary)) if len(keys) > 1 else (keys[0], boundary[0])
        conditions.append(position < after if descending else position > after)
    conditions.extend(_filter_clauses(dialect, filter_shape))
    order = [key.desc() if descending else key.asc() for key in keys]
    statement = select(*PUBLIC_COLUMNS).where(and_(*conditions)).order_by(*order).limit(bindparam("limit"))
    if any(filter_shape):
        statement = statement.execution_options(plan_each_time=True)
    return statement


def segments(sort: TaskSort, filters: TaskFilters) -> tuple[Segment, ...]:
    """The ranges a list in this order reads, in order."""
    if SORT_COLUMNS[sort][0] != "due_at":
        return (Segment.ALL,)
    # A due window leaves the undated tasks out.
    return (Segment.DATED,) if filters.has_due_window else (Segment.DATED, Segment.UNDATED)
