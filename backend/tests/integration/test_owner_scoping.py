"""Every SQL statement the service sends about tasks, their tags or the trash is keyed by the owner's
user_id: a SELECT, UPDATE or DELETE has `tasks.user_id = <the caller>` (`task_tags.user_id`,
`trashed_tasks.user_id` on the tags and trash tables) as
one of the conditions its WHERE clause ANDs together, and an INSERT stores the caller as the owner.
(Naming user_id in a column list proves nothing: every SELECT and RETURNING list names it.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from src.core.database import Database
from src.main import create_app
from tests.conftest import User, make_token, settings_for

TOUCHES_TASKS = re.compile(r"\b(?:FROM|UPDATE|INTO)\s+tasks\b", re.IGNORECASE)
TOUCHES_TAGS = re.compile(r"\b(?:FROM|UPDATE|INTO)\s+task_tags\b", re.IGNORECASE)
TOUCHES_TRASH = re.compile(r"\b(?:FROM|UPDATE|INTO)\s+trashed_tasks\b", re.IGNORECASE)
TOUCHES_CHANGES = re.compile(r"\b(?:FROM|UPDATE|INTO)\s+task_changes\b", re.IGNORECASE)
_LEADING_CTE = re.compile(r"\s*WITH\s+\w+\s+AS\s+\(", re.IGNORECASE)
_CLAUSE_END = re.compile(r"\s(?:ORDER BY|RETURNING|LIMIT|GROUP BY)\s", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|\?")
Statement = tuple[str, Any]


@pytest.fixture
def captured(database_url: str) -> Iterator[tuple[TestClient, list[Statement]]]:
    statements: list[Statement] = []
    with TestClient(create_app(settings_for(database_url))) as client:
        database: Database = client.app.state.database  # type: ignore[attr-defined]

        def observe(sql: str, parameters: Any) -> None:
            # A statement run for many rows (SQLite reports them together) counts once per row.
            many = isinstance(parameters, list) and parameters and isinstance(parameters[0], tuple | dict)
            sql = first_write(sql)
            statements.extend((sql, row) for row in parameters) if many else statements.append((sql, parameters))

        with database.statements_observed(observe):
            yield client, statements


def _conjuncts(condition: str) -> list[str]:
    """The parts of a condition that AND joins at the top level (outside any parentheses)."""
    parts, depth, start = [], 0, 0
    for match in re.finditer(r"\(|\)|\bAND\b", condition):
        token = match.group()
        depth += {"(": 1, ")": -1}.get(token, 0)
        if token == "AND" and depth == 0:
            parts.append(condition[start : match.start()].strip())
            start = match.end()
    parts.append(condition[start:].strip())
    return parts


def _bound_value(sql: str, parameters: Any, placeholder_at: int) -> Any:
    """The value bound to the placeholder starting at `placeholder_at`, named (PostgreSQL) or positional
    (SQLite)."""
    placeholder = _PLACEHOLDER.match(sql, placeholder_at)
    assert placeholder is not None, sql[placeholder_at:]
    if placeholder.group(1) is not None:
        return parameters[placeholder.group(1)]
    return parameters[len(_PLACEHOLDER.findall(sql, 0, placeholder_at))]


def first_write(sql: str) -> str:
    """A write with its change in one statement (`WITH written AS (<write>), recorded AS (INSERT INTO
    task_changes ... FROM written) SELECT ...`) is checked by its write: the change rows come from the
    rows the write returned."""
    cte = _LEADING_CTE.match(sql)
    if cte is None:
        return sql
    depth, end = 1, cte.end()
    while depth:
        depth += {"(": 1, ")": -1}.get(sql[end], 0)
        end += 1
    return sql[cte.end() : end - 1]


def owners_bound(sql: str, parameters: Any, table: str = "tasks") -> list[Any]:
    """The user ids a statement on tasks is confined to: for an INSERT, the user_id it stores; otherwise
    each `tasks.user_id = <value>` among the top-level conjuncts of its WHERE clause."""
    if sql.lstrip().upper().startswith("INSERT"):
        columns = re.search(r"\(([^)]*)\)\s*VALUES\s*\(", sql, re.IGNORECASE)
        assert columns is not None, sql
        names = [name.strip() for name in columns.group(1).split(",")]
        placeholders = list(_PLACEHOLDER.finditer(sql, columns.end()))
        return [_bound_value(sql, parameters, placeholders[names.index("user_id")].start())]
    where = re.search(r"\bWHERE\b", sql, re.IGNORECASE)
    if where is None:
        return []
    end = _CLAUSE_END.search(sql, where.end())
    clause_end = end.start() if end else len(sql)
    owners = []
    for conjunct in _conjuncts(sql[where.end() : clause_end]):
        owner = re.fullmatch(rf"{table}\.user_id = (\S+)", conjunct)
        if owner is not None:
            owners.append(_bound_value(sql, parameters, sql.index(conjunct, where.end()) + owner.start(1)))
    return owners


def test_every_statement_on_tasks_is_confined_to_the_callers_tasks(
    captured: tuple[TestClient, list[Statement]],
) -> None:
    client, statements = captured
    user = User(id="scoped-user", token=make_token("scoped-user"))
    headers = {**user.headers, "Idempotency-Key": "scoping"}
    task = client.post(user.tasks_url, json={"title": "a"}, headers=headers).json()
    client.post(user.tasks_url, json={"title": "a"}, headers=headers)
    client.post(user.tasks_url, json={"title": "b"}, headers=user.headers)
    page = client.get(user.tasks_url, params={"limit": 1, "status": "pending"}, headers=user.headers).json()
    client.get(
        user.tasks_url, params={"limit": 1, "status": "pending", "cursor": page["next_cursor"]}, headers=user.headers
    )
    url = user.task_url(task["id"])
    client.get(url, headers=user.headers)
    client.put(url, json={"title": "c"}, headers=user.headers)
    client.patch(url, json={"completed": True}, headers=user.headers)
    client.patch(url, json={"title": "d"}, headers={**user.headers, "If-Match": '"1", "3"'})
    client.patch(url + "/complete", headers=user.headers)
    client.delete(url, headers={**user.headers, "If-Match": '"9"'})
    client.delete(url, headers=user.headers)
    client.delete(url, headers=user.headers)
    tagged = client.post(user.tasks_url, json={"title": "t", "tags": ["a", "B"]}, headers=user.headers).json()
    client.patch(user.task_url(tagged["id"]), json={"tags": ["c"]}, headers=user.headers)
    filters = {"tag": ["c", "d"], "priority": "none", "due_before": "2030-01-01T00:00:00Z", "q": "t"}
    for sort in ["due_at", "-priority"]:
        client.get(user.tasks_url, params={"sort": sort, **filters}, headers=user.headers)
    client.get(f"/api/v1/users/{user.id}/tags", headers=user.headers)
    trash = f"/api/v1/users/{user.id}/trash"
    client.post(f"{trash}/{task['id']}/restore", headers={**user.headers, "If-Match": '"9"'})
    client.post(f"{trash}/{task['id']}/restore", headers=user.headers)
    client.patch(url + "/complete", headers=user.headers)
    client.patch(user.task_url(tagged["id"]), json={"completed": True}, headers=user.headers)
    client.post(f"{user.tasks_url}/clear-completed", headers=user.headers)
    page = client.get(trash, params={"limit": 1}, headers=user.headers).json()
    client.get(trash, params={"limit": 1, "cursor": page["next_cursor"]}, headers=user.headers)
    client.delete(f"{trash}/{task['id']}", headers=user.headers)
    client.delete(trash, headers=user.headers)
    changes = f"/api/v1/users/{user.id}/changes"
    client.get(
        changes, params={"since": client.get(changes, headers=user.headers).json()["next_token"]}, headers=user.headers
    )

    on_tasks = [(sql, parameters) for sql, parameters in statements if TOUCHES_TASKS.search(sql)]
    kinds = {sql.split(None, 1)[0].upper() for sql, _ in on_tasks}
    assert kinds == {"SELECT", "INSERT", "UPDATE", "DELETE"}
    assert len(on_tasks) >= 18
    unconfined = [sql for sql, parameters in on_tasks if owners_bound(sql, parameters) != [user.id]]
    assert unconfined == []
    on_tags = [
        (sql, parameters)
        for sql, parameters in statements
        if TOUCHES_TAGS.search(sql) and (sql, parameters) not in on_tasks
    ]
    assert {sql.split(None, 1)[0].upper() for sql, _ in on_tags} == {"SELECT", "INSERT", "DELETE"}
    assert [sql for sql, parameters in on_tags if owners_bound(sql, parameters, "task_tags") != [user.id]] == []
    on_trash = [
        (sql, parameters)
        for sql, parameters in statements
        if TOUCHES_TRASH.search(sql) and (sql, parameters) not in on_tasks
    ]
    assert {sql.split(None, 1)[0].upper() for sql, _ in on_trash} == {"SELECT", "INSERT", "DELETE"}
    assert len(on_trash) >= 9
    assert [sql for sql, parameters in on_trash if owners_bound(sql, parameters, "trashed_tasks") != [user.id]] == []
    on_changes = [
        (sql, parameters)
        for sql, parameters in statements
        if TOUCHES_CHANGES.search(sql) and (sql, parameters) not in on_tasks + on_trash
    ]
    assert {sql.split(None, 1)[0].upper() for sql, _ in on_changes} == {"SELECT", "INSERT"}
    assert [sql for sql, parameters in on_changes if owners_bound(sql, parameters, "task_changes") != [user.id]] == []


def test_the_check_reads_the_where_clause_not_the_column_lists() -> None:
    """The checker itself: a statement that names user_id only in its column lists, or ORs the owner
    condition away, is not confined."""
    select_all = "SELECT tasks.user_id, tasks.id FROM tasks WHERE tasks.id = %(task_id)s"
    or_owner = "SELECT tasks.id FROM tasks WHERE tasks.user_id = %(owner_id)s OR tasks.id = %(task_id)s"
    returning = "UPDATE tasks SET title=%(t)s WHERE tasks.id = %(task_id)s RETURNING tasks.user_id"
    confined = "DELETE FROM tasks WHERE tasks.user_id = ? AND tasks.id = ? AND (tasks.version = ? OR tasks.version = ?)"
    params = {"task_id": 1, "owner_id": "u", "t": "x"}

    assert owners_bound(select_all, params) == []
    assert owners_bound(or_owner, params) == []
    assert owners_bound(returning, params) == []
    assert owners_bound(confined, ("u", 1, 2, 3)) == ["u"]
