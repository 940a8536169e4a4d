"""Fixtures for the whole suite.

Every test that takes `client` runs twice: against a fresh SQLite file and against PostgreSQL
(`TEST_DATABASE_URL`, default the local server). The schema comes from `alembic upgrade head`. Tests
are isolated by data: each one works in the collections of users it makes up, with unique ids.
"""

from __future__ import annotations

import os
import string
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import psycopg
import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text

from src.core.config import Settings
from src.core.database import alembic_config
from src.main import create_app
from src.models.task import TaskPage, TaskPublic

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
CURSOR_SECRET = "test-cursor-secret-that-is-long-enough-0123456789"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
_skip_reasons: dict[str, int] = {}


def sync_url(database_url: str) -> str:
    """The same database through a blocking driver, for tests that look at rows directly."""
    return database_url.replace("sqlite+aiosqlite://", "sqlite://")


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "auth_jwt_secret": JWT_SECRET,
        "cursor_secret": CURSOR_SECRET,
        "db_pool_size": 5,
        **overrides,
    }
    return Settings(_env_file=None, **values)


def _postgres_problem(url: str) -> str | None:
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(conninfo, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return f"PostgreSQL at {conninfo} is unreachable ({type(error).__name__})"


def _reset_postgres(url: str) -> None:
    engine = create_engine(sync_url(url))
    with engine.begin() as connection:  # every table of the schema, so a table added later is dropped too
        tables = connection.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
        names = ", ".join(f'"{name}"' for name in tables.scalars())
        if names:
            connection.execute(text(f"DROP TABLE IF EXISTS {names} CASCADE"))
    engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'tasks.db'}"
    else:
        url = TEST_DATABASE_URL
        problem = _postgres_problem(url)
        if problem is not None:
            if IN_CI:
                pytest.fail(f"{problem}: CI needs PostgreSQL (bash .ci/run starts the local server)")
            pytest.skip(f"{problem}: the PostgreSQL half of the suite did not run")
        _reset_postgres(url)
    command.upgrade(alembic_config(url), "head")
    return url


@pytest.fixture(scope="session")
def app_settings(database_url: str) -> Settings:
    return settings_for(database_url)


@pytest.fixture(scope="session")
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def db(database_url: str) -> Iterator[Engine]:
    engine = create_engine(sync_url(database_url))
    yield engine
    engine.dispose()


def respelled(token: str) -> str:
    """A cursor or sync token whose signature decodes to the same bytes but is spelled otherwise: its last
    character with an unused low bit set (a 16-byte signature leaves four unused)."""
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    last = alphabet[alphabet.index(token[-1]) | 1]
    assert last != token[-1], "a signature's last character has its unused bits clear"
    return token[:-1] + last


def make_token(
    sub: str | None, *, secret: str = JWT_SECRET, lifetime: timedelta = timedelta(hours=1), **claims: Any
) -> str:
    payload: dict[str, Any] = {"exp": datetime.now(UTC) + lifetime, **claims}
    if sub is not None:
        payload["sub"] = sub
    return jwt.encode(payload, secret, algorithm="HS256")


@dataclass(frozen=True)
class User:
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def tasks_url(self) -> str:
        return f"/api/v1/users/{self.id}/tasks"

    def task_url(self, task_id: str | uuid.UUID) -> str:
        return f"{self.tasks_url}/{task_id}"


@pytest.fixture
def make_user() -> Callable[[str], User]:
    def _make_user(name: str = "user") -> User:
        user_id = f"{name}-{uuid.uuid4().hex[:12]}"
        return User(id=user_id, token=make_token(user_id))

    return _make_user


@pytest.fixture
def alice(make_user: Callable[[str], User]) -> User:
    return make_user("alice")


@pytest.fixture
def bob(make_user: Callable[[str], User]) -> User:
    return make_user("bob")


@pytest.fixture
def create_task(client: TestClient) -> Callable[..., dict[str, Any]]:
    def _create_task(user: User, **fields: Any) -> dict[str, Any]:
        body = {"title": "A task", **fields}
        response = client.post(user.tasks_url, json=body, headers=user.headers)
        assert response.status_code == 201, response.text
        task: dict[str, Any] = response.json()
        TaskPublic.model_validate(task)  # the documented schema, though the body is rendered without it
        return task

    return _create_task


def walk_pages(
    client: TestClient, user: User, between_pages: Callable[[], None] | None = None, **params: Any
) -> Iterator[list[dict[str, Any]]]:
    """Every page of the user's list, each checked against its schema, following `next_cursor` to the end;
    `between_pages` runs before each next page is asked for."""
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(user.tasks_url, params=query, headers=user.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        TaskPage.model_validate(page)
        yield page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return
        if between_pages is not None:
            between_pages()


def stored_task(db: Engine, task_id: str) -> dict[str, Any] | None:
    """The task's row as the database holds it, or None."""
    with db.connect() as connection:
        row = connection.execute(
            text("SELECT * FROM tasks WHERE id = :id"),
            {"id": uuid.UUID(task_id) if db.dialect.name == "postgresql" else uuid.UUID(task_id).hex},
        ).one_or_none()
    return None if row is None else dict(row._mapping)


def stored_count(db: Engine, user_id: str) -> int:
    with db.connect() as connection:
        count: int = connection.execute(
            text("SELECT count(*) FROM tasks WHERE user_id = :user_id"), {"user_id": user_id}
        ).scalar_one()
    return count


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        _skip_reasons[reason] = _skip_reasons.get(reason, 0) + 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Says loudly, once per reason, what did not run (the closing line only counts it)."""
    if _skip_reasons:
        terminalreporter.section("SKIPPED: THESE TESTS DID NOT RUN", sep="!", red=True, bold=True)
        for reason, count in sorted(_skip_reasons.items()):
            terminalreporter.line(f"{count} tests skipped: {reason}", red=True)
