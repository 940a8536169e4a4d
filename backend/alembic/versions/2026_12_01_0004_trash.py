"""The trash: a table of deleted tasks, with every column of tasks and the time of deletion.

A new, empty table and its indexes: nothing on the tasks table changes, so it is safe on a live database.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    array = sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")
    op.create_table(
        "trashed_tasks",
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("tags", array, nullable=False),
        sa.Column("tag_keys", array, nullable=False),
        sa.Column("title_folded", sa.Text(), nullable=True),
        sa.Column("description_folded", sa.Text(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trashed_tasks")),
    )
    op.create_index("ix_trashed_tasks_user_id_deleted_at_id", "trashed_tasks", ["user_id", "deleted_at", "id"])
    op.create_index("ix_trashed_tasks_deleted_at", "trashed_tasks", ["deleted_at"])


def downgrade() -> None:
    op.drop_index("ix_trashed_tasks_deleted_at", table_name="trashed_tasks")
    op.drop_index("ix_trashed_tasks_user_id_deleted_at_id", table_name="trashed_tasks")
    op.drop_table("trashed_tasks")
