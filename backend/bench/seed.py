"""Loads benchmark data fast with COPY: N users with M tasks each, plus heavy users with many tasks.

Idempotent: a user who already has their tasks gets no more. `python -m bench.seed --help`.
"""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
from tqdm import tqdm
from uuid_utils.compat import uuid7

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/tasks_bench"
COLUMNS = (
    "id, user_id, title, description, completed, completed_at, created_at, updated_at, version, "
    "due_at, priority, tags, tag_keys, title_folded, description_folded"
)
# One tag per task, each on a tenth of them; a word in a tenth of the titles and one in 0.01%.
TAGS = ["work", "home", "errands", "garden", "health", "money", "family", "travel", "reading", "music"]
COMMON_WORD = "milk"
RARE_WORD = "quokka"
WORDS = [
    "buy",
    "call",
    "email",
    "fix",
    "plan",
    "read",
    "review",
    "send",
    "ship",
    "test",
    "write",
    "book",
    "pay",
    "clean",
    "call",
    "draft",
]


def bench_database_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL).replace("postgresql+psycopg://", "postgresql://")


def regular_user(index: int) -> str:
    return f"bench-user-{index}"


def heavy_user(task_count: int) -> str:
    return f"heavy-{task_count}"


def _rows(user_id: str, start: int, count: int, rng: random.Random) -> Iterator[tuple[object, ...]]:
    """Tasks as the service writes them; 70% have a due date within a year, priorities are even."""
    base = datetime(2025, 1, 1, tzinfo=UTC)
    for index in range(start, start + count):
        created = base + timedelta(seconds=index * 13)
        completed = rng.random() < 0.3
        word = COMMON_WORD if index % 10 == 3 else RARE_WORD if index % 10_000 == 7 else rng.choice(WORDS)
        title = f"{rng.choice(WORDS)} {word} #{index}"
        description = None if rng.random() < 0.5 else "Some details about this task, one line long."
        yield (
            uuid7(),
            user_id,
            title,
            description,
            completed,
            created + timedelta(hours=1) if completed else None,
            created,
            created + timedelta(seconds=rng.randrange(86_400)),
            1,
            None if rng.random() < 0.3 else base + timedelta(minutes=rng.randrange(525_600)),
            rng.randrange(4),
            [TAGS[index % len(TAGS)]],
            [TAGS[index % len(TAGS)]],
            title.casefold(),
            None if description is None else description.casefold(),
        )


def seed(conninfo: str, wanted: dict[str, int]) -> None:
    rng = random.Random(42)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        have: dict[str, int] = dict(
            connection.execute(
                "SELECT user_id, count(*) FROM tasks WHERE user_id = ANY(%s) GROUP BY user_id", [list(wanted)]
            ).fetchall()
        )
        missing = {user: count - have.get(user, 0) for user, count in wanted.items() if count > have.get(user, 0)}
        total = sum(missing.values())
        if not total:
            print(f"benchmark data already loaded ({sum(wanted.values()):,} tasks)")
            return
        with tqdm(total=total, unit="task", unit_scale=True, desc="seeding") as progress:
            for user, count in missing.items():
                tagged: list[tuple[object, ...]] = []
                task_ids: list[object] = []
                with connection.transaction():
                    with connection.cursor().copy(f"COPY tasks ({COLUMNS}) FROM STDIN") as copy:
                        for number, row in enumerate(_rows(user, have.get(user, 0), count, rng), start=1):
                            copy.write_row(row)
                            task_ids.append(row[0])
                            tagged.extend((row[0], row[1], tag, tag) for tag in row[12])  # type: ignore[attr-defined]
                            if number % 10_000 == 0:
                                progress.update(10_000)
                    with connection.cursor().copy("COPY task_tags (task_id, user_id, tag_key, tag) FROM STDIN") as copy:
                        for tag_row in tagged:
                            copy.write_row(tag_row)
                    _record_changes(connection, user, task_ids)
                    progress.update(count % 10_000)
        for table in ("tasks", "task_tags", "task_changes"):
            connection.execute(f"ANALYZE {table}")


def _record_changes(connection: psycopg.Connection[tuple[object, ...]], user: str, task_ids: list[object]) -> None:
    """A change for each new task, at position 0 as migration 0005 records existing tasks (for the sync run)."""
    now = datetime.now(UTC)
    with connection.cursor().copy("COPY task_changes (user_id, task_id, seq, deleted, changed_at) FROM STDIN") as copy:
        for task_id in task_ids:
            copy.write_row((user, task_id, 0, False, now))


def wanted_tasks(users: int, tasks_per_user: int, heavy: list[int]) -> dict[str, int]:
    wanted = {regular_user(index): tasks_per_user for index in range(users)}
    wanted.update({heavy_user(count): count for count in heavy})
    return wanted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--tasks-per-user", type=int, default=100)
    parser.add_argument("--heavy", default="1000,100000,1000000", help="task counts of the heavy users")
    args = parser.parse_args()
    heavy = [int(count) for count in args.heavy.split(",") if count]
    seed(bench_database_url(), wanted_tasks(args.users, args.tasks_per_user, heavy))


if __name__ == "__main__":
    main()
