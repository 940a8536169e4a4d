"""Create the tasks table, its constraints and one index per sort order.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SORT_INDEXES = {
    "ix_tasks_user_id_created_at_id": ["user_id", "created_at", "id"],
    "ix_tasks_user_id_updated_at_id": ["user_id", "updated_at", "id"],
    "ix_tasks_user_id_title_id": ["user_id", "title", "id"],
    "ix_tasks_user_id_completed_created_at_id": [
        "user_id",
        "completed",
        "created_at",
        "id",
    ],
    "ix_tasks_user_id_completed_updated_at_id": [
        "user_id",
        "completed",
        "updated_at",
        "id",
    ],
    "ix_tasks_user_id_completed_title_id": ["user_id", "completed", "title", "id"],
}


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.CheckConstraint(
            "length(title) >= 1 AND length(title) <= 200",
            name=op.f("ck_tasks_title_length"),
        ),
        sa.CheckConstraint(
            "description IS NULL OR length(description) <= 1000",
            name=op.f("ck_tasks_description_length"),
        ),
        sa.CheckConstraint(
            "(completed AND completed_at IS NOT NULL) OR (NOT completed AND completed_at IS NULL)",
            name=op.f("ck_tasks_completed_at_matches_completed"),
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_tasks_version_positive")),
    )
    for name, columns in SORT_INDEXES.items():
        op.create_index(name, "tasks", columns)


def downgrade() -> None:
    for name in SORT_INDEXES:
        op.drop_index(name, table_name="tasks")
    op.drop_table("tasks")
