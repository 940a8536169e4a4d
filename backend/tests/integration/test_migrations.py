"""The schema is Alembic's: upgrade, downgrade and the models agree, on both databases."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, inspect

from src.core.database import alembic_config
from tests.conftest import sync_url


def test_alembic_head_matches_the_models(database_url: str) -> None:
    command.check(alembic_config(database_url))


def test_upgrade_downgrade_upgrade_on_a_fresh_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    config = alembic_config(url)
    engine = create_engine(sync_url(url))

    command.upgrade(config, "head")
    assert "tasks" in inspect(engine).get_table_names()
    indexes = {index["name"] for index in inspect(engine).get_indexes("tasks")}
    assert {"ix_tasks_user_id_created_at_id", "ix_tasks_user_id_completed_title_id"} <= indexes
    command.downgrade(config, "base")
    assert "tasks" not in inspect(engine).get_table_names()
    command.upgrade(config, "head")
    assert "tasks" in inspect(engine).get_table_names()
    engine.dispose()
