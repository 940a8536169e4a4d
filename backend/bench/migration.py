"""Runs a migration on a live copy: a database at the previous revision holding a million tasks, written to
all along by clients of the previous version, while `alembic upgrade` runs. Prints how long the upgrade
took and how long any write waited meanwhile (a write blocked behind a lock shows as a long wait).

`python -m bench.migration [--tasks 1000000] [--from-revision 0002]` (BENCH_DATABASE_URL's server; it
uses a database of its own, `tasks_migration`, made afresh).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from tqdm import tqdm
from uuid_utils.compat import uuid7

from bench.seed import WORDS, bench_database_url
from src.core.database import alembic_config

DATABASE = "tasks_migration"
MIGRATION_RESULTS = Path(__file__).parent / "results" / "migration.json"
USERS = 1000
WRITERS = 4


def _fresh_database(server: str) -> str:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
    return f"{server}/{DATABASE}"


def _seed_previous_revision(conninfo: str, tasks: int) -> None:
    """Tasks as the previous revision stores them, spread over USERS users."""
    rng = random.Random(1)
    base = datetime(2025, 1, 1, tzinfo=UTC)
    columns = "id, user_id, title, description, completed, completed_at, created_at, updated_at, version"
    with (
        psycopg.connect(conninfo) as connection,
        connection.cursor().copy(f"COPY tasks ({columns}) FROM STDIN") as copy,
    ):
        for index in tqdm(range(tasks), unit="task", unit_scale=True, desc="seeding", mininterval=2):
            created = base + timedelta(seconds=index)
            copy.write_row(
                (
                    uuid7(),
                    f"user-{index % USERS}",
                    f"{rng.choice(WORDS)} {rng.choice(WORDS)} #{index}",
                    None if index % 2 else "Some details about this task, one line long.",
                    False,
                    None,
                    created,
                    created,
                    1,
                )
            )
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE) tasks")


class Writer(threading.Thread):
    """A client of the previous version: creates a task, then renames it, over and over; times each write."""

    def __init__(self, conninfo: str, number: int) -> None:
        super().__init__(daemon=True)
        self.conninfo = conninfo
        self.number = number
        self.waits: list[tuple[float, float]] = []  # (start, seconds)
        self.running = True

    def run(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as connection:
            while self.running:
                task_id, now = uuid7(), datetime.now(UTC)
                user = f"user-{self.number}"
                self._timed(
                    connection,
                    "INSERT INTO tasks (id, user_id, title, description, completed, completed_at, created_at, "
                    "updated_at, version) VALUES (%s, %s, 'written meanwhile', NULL, false, NULL, %s, %s, 1)",
                    [task_id, user, now, now],
                )
                self._timed(
                    connection,
                    "UPDATE tasks SET title = 'renamed', version = version + 1 WHERE user_id = %s AND id = %s",
                    [user, task_id],
                )
                time.sleep(0.005)

    def _timed(self, connection: psycopg.Connection[Any], sql: str, params: list[Any]) -> None:
        started = time.monotonic()
        connection.execute(sql, params)
        self.waits.append((started, time.monotonic() - started))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--from-revision", default="0002")
    args = parser.parse_args()

    conninfo = _fresh_database(bench_database_url().rsplit("/", 1)[0])
    command.upgrade(alembic_config(conninfo), args.from_revision)
    _seed_previous_revision(conninfo, args.tasks)

    writers = [Writer(conninfo, number) for number in range(WRITERS)]
    for writer in writers:
        writer.start()
    time.sleep(2)  # writes before the migration, for comparison
    started = time.monotonic()
    command.upgrade(alembic_config(conninfo), "head")
    migration_seconds = time.monotonic() - started
    time.sleep(1)
    for writer in writers:
        writer.running = False
    for writer in writers:
        writer.join()

    before = [wait for writer in writers for start, wait in writer.waits if start < started]
    during = [
        wait for writer in writers for start, wait in writer.waits if started <= start < started + migration_seconds
    ]
    with psycopg.connect(conninfo) as connection:
        unfolded = connection.execute("SELECT count(*) FROM tasks WHERE title_folded IS NULL").fetchone()
    result = {
        "tasks": args.tasks,
        "from_revision": args.from_revision,
        "writers": WRITERS,
        "migration_seconds": round(migration_seconds, 1),
        "writes_during": len(during),
        "write_ms_before": {"p50": _ms(statistics.median(before)), "max": _ms(max(before))},
        "write_ms_during": {
            "p50": _ms(statistics.median(during)),
            "p99": _ms(statistics.quantiles(during, n=100)[98]),
            "max": _ms(max(during)),
        },
        "rows_left_unfolded": unfolded[0] if unfolded else None,
    }
    print("MIGRATION " + json.dumps(result))
    MIGRATION_RESULTS.parent.mkdir(exist_ok=True)
    MIGRATION_RESULTS.write_text(json.dumps({"date": datetime.now(UTC).isoformat(), **result}, indent=2) + "\n")


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


if __name__ == "__main__":
    main()
