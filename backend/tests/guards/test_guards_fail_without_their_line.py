"""Each guard test fails without the line it guards.

For each guard, the code is copied, the one line that gives the guarantee is taken out (or weakened), and
the guard test runs on the copy in its own pytest process, against its own PostgreSQL database: it must
fail. A guard that passes whatever the code says guards nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

import psycopg
import pytest

from src.core.config import BACKEND_DIR
from tests.conftest import IN_CI, TEST_DATABASE_URL

pytestmark = pytest.mark.slow

GUARDS_DATABASE = "test_guards"


@dataclass(frozen=True)
class Guard:
    name: str
    path: str
    line: str
    without: str
    tests: tuple[str, ...]


GUARDS = [
    Guard(
        "owner scoping: every task statement is confined to the caller's rows",
        "src/services/task_service.py",
        "condition = (table.c.user_id == _USER_ID) & (table.c.id == _TASK_ID)",
        "condition = table.c.id == _TASK_ID",
        ("tests/integration/test_owner_scoping.py",),
    ),
    Guard(
        "owner scoping: a page of the trash holds the caller's deleted tasks only",
        "src/services/trash_service.py",
        "conditions = [trashed_tasks.c.user_id == OWNER_ID, _KEPT]",
        "conditions = [_KEPT]",
        ("tests/integration/test_owner_scoping.py",),
    ),
    Guard(
        "trash retention: a task deleted longer ago than the retention is no longer shown",
        "src/services/trash_service.py",
        "conditions = [trashed_tasks.c.user_id == OWNER_ID, _KEPT]",
        "conditions = [trashed_tasks.c.user_id == OWNER_ID]",
        ("tests/integration/test_trash.py::test_a_trashed_task_past_the_retention_is_gone_before_the_purge_runs",),
    ),
    Guard(
        "query plans: a page is read in index order, the id breaking ties in the sort's direction",
        "src/services/task_listing.py",
        "order = [key.desc() if descending else key.asc() for key in keys]",
        "order = [key.desc() if descending != (key is tasks.c.id) else key.asc() for key in keys]",
        ("tests/integration/test_query_plans.py",),
    ),
    Guard(
        "due-date orders: the dated range leaves the undated tasks to the range after it",
        "src/services/task_listing.py",
        "        conditions.append(tasks.c.due_at.is_not(None))\n",
        "        pass\n",
        ("tests/integration/test_task_filters.py::test_due_date_orders_put_undated_tasks_last_and_break_ties_by_id",),
    ),
    Guard(
        "problem bodies: a message that would quote the input gets a fixed text",
        "src/api/problems.py",
        '"msg": _FIXED_MESSAGES.get(str(error["type"]), str(error["msg"])),',
        '"msg": str(error["msg"]),',
        ("tests/contract/test_errors.py::test_problem_bodies_never_echo_the_request",),
    ),
    Guard(
        "route access: a private route authorizes its caller",
        "src/api/access.py",
        "            authorize(request.scope)\n",
        "",
        ("tests/contract/test_route_access.py",),
    ),
    Guard(
        "public fields: a task read returns TaskPublic's fields only",
        "src/services/task_service.py",
        "_GET = select(*PUBLIC_COLUMNS).where(owned(tasks))",
        '_GET = select(*PUBLIC_COLUMNS, tasks.c.version.label("internal_revision")).where(owned(tasks))',
        ("tests/contract/test_public_fields.py",),
    ),
    Guard(
        "write answers: a write without If-Match that finds its task gone is a 404, never a 412",
        "src/services/task_service.py",
        "    if expected_versions is None:\n        return TaskNotFound()\n",
        "",
        ("tests/integration/test_writes_racing_a_move.py",),
    ),
    Guard(
        "restore answers: a restore without If-Match that finds nothing to take is a 404, never a 412",
        "src/services/trash_service.py",
        "found = expected_versions is not None and await connection.fetch(",
        "found = await connection.fetch(",
        (
            "tests/integration/test_writes_racing_a_move.py::test_a_write_that_finds_its_task_moved_away_is_404_though_it_is_back[restore-postgresql]",
        ),
    ),
    Guard(
        "tokens: a cursor or sync token is taken only as it was given, not respelled",
        "src/services/pagination.py",
        '    if _b64encode(raw) != text:\n        raise ValueError("not the token\'s own spelling")\n',
        "",
        ("tests/integration/test_sync.py::test_a_tampered_or_borrowed_token_is_a_422",),
    ),
    Guard(
        "pool renewal: a lost database renews every connection opened before",
        "src/core/database.py",
        "self._renewal.database_lost()",
        "pass",
        ("tests/unit/test_pool_context.py",),
    ),
]


@pytest.fixture(scope="module")
def guards_database_url() -> str:
    conninfo = TEST_DATABASE_URL.replace("postgresql+psycopg://", "postgresql://")
    server = conninfo.rsplit("/", 1)[0]
    try:
        with psycopg.connect(server + "/postgres", autocommit=True, connect_timeout=3) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [GUARDS_DATABASE]).fetchone():
                admin.execute(f'CREATE DATABASE "{GUARDS_DATABASE}"')
    except psycopg.Error as error:
        message = f"PostgreSQL at {server} is unreachable ({type(error).__name__}): the guard checks did not run"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return TEST_DATABASE_URL.rsplit("/", 1)[0] + "/" + GUARDS_DATABASE


@pytest.mark.parametrize("guard", GUARDS, ids=[guard.name.split(":")[0] for guard in GUARDS])
def test_the_guard_test_fails_without_its_line(
    guard: Guard, guards_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    copy = tmp_path_factory.mktemp("mutant") / "backend"
    shutil.copytree(
        BACKEND_DIR, copy, ignore=shutil.ignore_patterns(".venv", "__pycache__", "*.db*", ".env", "bench", "docs")
    )
    source = copy / guard.path
    text = source.read_text()
    assert text.count(guard.line) == 1, f"{guard.path} no longer holds the guarded line: update this guard"
    source.write_text(text.replace(guard.line, guard.without))

    result = subprocess.run(  # noqa: S603 - this interpreter, running pytest on the copy
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow", *guard.tests],
        cwd=copy,
        env={**os.environ, "TEST_DATABASE_URL": guards_database_url, "CI": "true"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    summary = _tail(result.stdout)
    assert result.returncode == 1, f"expected the guard test to fail (exit code 1), got {result.returncode}:\n{summary}"
    assert " failed" in summary, summary


def _tail(output: str, lines: int = 30) -> str:
    return "\n".join(output.splitlines()[-lines:])
