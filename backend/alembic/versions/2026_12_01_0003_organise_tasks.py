"""Due dates, priorities, tags and search: new columns, a task_tags table and their indexes.

Safe on a live PostgreSQL database: the new columns are nullable or have a constant default (no table
rewrite), the priority check is validated without blocking writes, the search columns are filled in
short batches, and every index on tasks is built concurrently.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from src.models.task import fold

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SORT_INDEXES = {
    "ix_tasks_user_id_due_at_id": ["user_id", "due_at", "id"],
    "ix_tasks_user_id_completed_due_at_id": ["user_id", "completed", "due_at", "id"],
    "ix_tasks_user_id_priority_id": ["user_id", "priority", "id"],
    "ix_tasks_user_id_completed_priority_id": ["user_id", "completed", "priority", "id"],
}
BACKFILL_BATCH = 2000
# A filtered list has two plans (the order's index, skipping what does not match, or the filter's own
# index, then a sort of the matches), and PostgreSQL's default price of a random read (4, for spinning
# disks) makes it read a whole GIN posting list for a common word or tag (40 ms) where the order's index
# takes 0.4 ms. 1.1 prices reads as a database held in memory or on SSD does (docs/design.md).
PRICE_RANDOM_READS_AS_CACHED = """
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET random_page_cost = 1.1', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'random_page_cost is not set: only the database owner may (see docs/deployment.md)';
END $$
"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column("tasks", sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tasks", sa.Column("priority", sa.SmallInteger(), server_default="0", nullable=False))
    for name in ("tags", "tag_keys"):  # an array on PostgreSQL, JSON on SQLite; empty on existing rows
        array = sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")
        op.add_column("tasks", sa.Column(name, array, server_default="{}" if postgres else "[]", nullable=False))
    op.add_column("tasks", sa.Column("title_folded", sa.Text(), nullable=True))
    op.add_column("tasks", sa.Column("description_folded", sa.Text(), nullable=True))
    if not postgres:  # SQLite adds a constraint by copying the table: before anything refers to it
        with op.batch_alter_table("tasks") as batch:
            batch.create_check_constraint("priority_rank", "priority >= 0 AND priority <= 3")
    op.create_table(
        "task_tags",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("tag_key", sa.Text(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("tag", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_task_tags_task_id_tasks"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "tag_key", name=op.f("pk_task_tags")),
    )
    op.create_index("ix_task_tags_user_id_tag_key_task_id", "task_tags", ["user_id", "tag_key", "task_id"])
    if not postgres:
        _fill_search_columns()
        for name, columns in SORT_INDEXES.items():
            op.create_index(name, "tasks", columns)
        return

    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(PRICE_RANDOM_READS_AS_CACHED)
    op.create_check_constraint("priority_rank", "tasks", "priority >= 0 AND priority <= 3", postgresql_not_valid=True)
    with op.get_context().autocommit_block():
        op.execute("ALTER TABLE tasks VALIDATE CONSTRAINT ck_tasks_priority_rank")
        _fill_search_columns()  # autocommit: each batch commits on its own
        for name, columns in SORT_INDEXES.items():
            op.create_index(name, "tasks", columns, postgresql_concurrently=True)
        op.create_index(
            "ix_tasks_tag_keys", "tasks", ["tag_keys"], postgresql_using="gin", postgresql_concurrently=True
        )
        op.execute(
            "CREATE INDEX CONCURRENTLY ix_tasks_search ON tasks USING gin "
            "((title_folded || ' ' || coalesce(description_folded, '')) gin_trgm_ops)"
        )


def _fill_search_columns() -> None:
    """Folds the title and description of the rows written before this revision, in short batches (on
    PostgreSQL each batch is a transaction of its own). A row written meanwhile by this version already
    carries its folded text and is left alone."""
    connection = op.get_bind()
    tasks = sa.table(
        "tasks",
        sa.column("id", sa.Uuid()),
        sa.column("title", sa.Text()),
        sa.column("description", sa.Text()),
        sa.column("title_folded", sa.Text()),
        sa.column("description_folded", sa.Text()),
    )
    fill = (
        sa.update(tasks)
        .where(tasks.c.id == sa.bindparam("row_id"), tasks.c.title_folded.is_(None))
        .values(title_folded=sa.bindparam("new_title"), description_folded=sa.bindparam("new_description"))
    )
    last_id = None
    while True:
        batch = sa.select(tasks.c.id, tasks.c.title, tasks.c.description).order_by(tasks.c.id).limit(BACKFILL_BATCH)
        if last_id is not None:
            batch = batch.where(tasks.c.id > last_id)
        rows = connection.execute(batch.where(tasks.c.title_folded.is_(None))).all()
        if not rows:
            break
        connection.execute(
            fill,
            [
                {
                    "row_id": row.id,
                    "new_title": fold(row.title),
                    "new_description": None if row.description is None else fold(row.description),
                }
                for row in rows
            ],
        )
        last_id = rows[-1].id


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET random_page_cost', current_database()); END $$")
        op.drop_index("ix_tasks_search", table_name="tasks")
        op.drop_index("ix_tasks_tag_keys", table_name="tasks")
    for name in SORT_INDEXES:
        op.drop_index(name, table_name="tasks")
    op.drop_index("ix_task_tags_user_id_tag_key_task_id", table_name="task_tags")
    op.drop_table("task_tags")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_constraint("priority_rank", type_="check")
        for column in ("description_folded", "title_folded", "tag_keys", "tags", "priority", "due_at"):
            batch.drop_column(column)
