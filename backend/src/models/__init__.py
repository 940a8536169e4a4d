"""Tables and their API schemas. Importing this package registers every table on the metadata."""

from sqlmodel import SQLModel

# Explicit names keep migrations stable and readable on every database.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

from src.models.idempotency import IdempotencyRecord  # noqa: E402 - after the naming convention
from src.models.sync import TaskChange  # noqa: E402
from src.models.task import Task, TaskTag  # noqa: E402
from src.models.trash import trashed_tasks  # noqa: E402

__all__ = [
    "IdempotencyRecord",
    "SQLModel",
    "Task",
    "TaskChange",
    "TaskTag",
    "trashed_tasks",
]
