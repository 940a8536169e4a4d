"""Revision 0003 on a database that already holds tasks: they keep their data, gain the defaults of the new
fields, and are found by search, on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from src.core.database import alembic_config
from src.main import create_app
from tests.conftest import IN_CI, TEST_DATABASE_URL, User, make_token, settings_for, sync_url

MIGRATION_DATABASE = "test_migration"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'before.db'}"
        return
    server = TEST_DATABASE_URL.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
    try:
        with psycopg.connect(server + "/postgres", autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{MIGRATION_DATABASE}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{MIGRATION_DATABASE}"')
    except psycopg.Error as error:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {server} is unreachable ({type(error).__name__})")
        pytest.skip(f"PostgreSQL at {server} is unreachable ({type(error).__name__})")
    yield TEST_DATABASE_URL.rsplit("/", 1)[0] + "/" + MIGRATION_DATABASE


def test_tasks_stored_before_the_organise_revision_are_kept_and_searchable(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "0002")
    engine = create_engine(sync_url(empty_database))
    user = User(id="before", token=make_token("before"))
    created = datetime(2026, 11, 1, tzinfo=UTC)
    ids = [uuid.uuid4() for _ in range(3)]
    with engine.begin() as connection:
        for index, task_id in enumerate(ids):
            connection.execute(
                text(
                    "INSERT INTO tasks (id, user_id, title, description, completed, completed_at, created_at, "
                    "updated_at, version) VALUES (:id, :user_id, :title, :description, false, NULL, :at, :at, 1)"
                ),
                {
                    "id": task_id if engine.dialect.name == "postgresql" else task_id.hex,
                    "user_id": user.id,
                    "title": ["Buy MILK", "Straße fegen", "Other"][index],
                    "description": [None, "École", None][index],
                    "at": created if engine.dialect.name == "postgresql" else created.replace(tzinfo=None),
                },
            )
    engine.dispose()

    command.upgrade(config, "head")

    with TestClient(create_app(settings_for(empty_database))) as client:
        page = client.get(user.tasks_url, params={"sort": "title"}, headers=user.headers).json()
        assert [(task["title"], task["due_at"], task["priority"], task["tags"]) for task in page["items"]] == [
            ("Buy MILK", None, "none", []),
            ("Other", None, "none", []),
            ("Straße fegen", None, "none", []),
        ]
        for query, found in [("milk", "Buy MILK"), ("strasse", "Straße fegen"), ("école", "Straße fegen")]:
            items = client.get(user.tasks_url, params={"q": query}, headers=user.headers).json()["items"]
            assert [task["title"] for task in items] == [found], query

    command.downgrade(config, "0002")
    command.upgrade(config, "head")
    command.check(config)
