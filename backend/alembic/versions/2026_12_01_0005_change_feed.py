"""The change feed: each task's latest change.

A new table, then a change for every existing task (in short batches, each its own transaction on
PostgreSQL) at position 0, before any change to come, so that a first sync finds every task; nothing on
the tasks table changes. A task the previous version writes while this runs, after its batch, reaches
the feed when it is next changed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL_BATCH = 5000


def upgrade() -> None:
    op.create_table(
        "task_changes",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "task_id", name=op.f("pk_task_changes")),
    )
    op.create_index("ix_task_changes_user_id_seq_task_id", "task_changes", ["user_id", "seq", "task_id"])
    op.create_index(
        "ix_task_changes_removed_changed_at",
        "task_changes",
        ["changed_at"],
        postgresql_where=sa.text("deleted"),
        sqlite_where=sa.text("deleted"),
    )
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            _record_existing_tasks()
    else:
        _record_existing_tasks()


def _record_existing_tasks() -> None:
    connection = op.get_bind()
    tasks = sa.table("tasks", sa.column("id", sa.Uuid()), sa.column("user_id", sa.String()))
    changes = sa.table(
        "task_changes",
        sa.column("user_id", sa.String()),
        sa.column("task_id", sa.Uuid()),
        sa.column("seq", sa.BigInteger()),
        sa.column("deleted", sa.Boolean()),
        sa.column("changed_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    last_id = None
    while True:
        batch = sa.select(tasks.c.id, tasks.c.user_id).order_by(tasks.c.id).limit(BACKFILL_BATCH)
        if last_id is not None:
            batch = batch.where(tasks.c.id > last_id)
        rows = connection.execute(batch).all()
        if not rows:
            break
        connection.execute(
            sa.insert(changes),
            [
                {"user_id": row.user_id, "task_id": row.id, "seq": 0, "deleted": False, "changed_at": now}
                for row in rows
            ],
        )
        last_id = rows[-1].id


def downgrade() -> None:
    op.drop_index("ix_task_changes_removed_changed_at", table_name="task_changes")
    op.drop_index("ix_task_changes_user_id_seq_task_id", table_name="task_changes")
    op.drop_table("task_changes")
