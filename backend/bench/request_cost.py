"""What one request costs the app, in CPU time, by how it ends: a served 50-task page, a refusal (503, every
database slot held elsewhere) and a 401 (no token). The app is called in-process, without uvicorn, and
the three are measured in turn, round after round, so drift on a noisy machine hits them alike; the
figures are medians over the rounds, with each one's share of a served page.

`python -m bench.request_cost 2>/dev/null` (the access log goes to stderr; BENCH_DATABASE_URL's server,
seeded by `make bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from pydantic import SecretStr
from starlette.types import Message

from bench.run import CURSOR_SECRET, JWT_SECRET, _token
from bench.seed import bench_database_url, regular_user
from src.core.config import Settings
from src.core.database import Database
from src.main import create_app

SLOTS = 10


def _scope(user_id: str, token: str | None) -> dict[str, Any]:
    path = f"/api/v1/users/{user_id}/tasks"
    headers = [(b"host", b"127.0.0.1")] + ([(b"authorization", f"Bearer {token}".encode())] if token else [])
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "state": {},
    }


async def _call(app: FastAPI, scope: dict[str, Any], statuses: list[int]) -> None:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(dict(scope, state={}), receive, send)


async def _holding_every_slot(database: Database, work: Awaitable[object]) -> None:
    release = asyncio.Event()
    admissions = [await database.admit() for _ in range(SLOTS)]

    async def hold(admission: AbstractAsyncContextManager[None]) -> None:
        async with admission:
            await release.wait()

    holders = [asyncio.create_task(hold(admission)) for admission in admissions]
    try:
        await work
    finally:
        release.set()
        await asyncio.gather(*holders)


async def measure(rounds: int, requests: int) -> dict[str, float]:
    user = regular_user(0)
    settings = Settings(
        environment="production",
        database_url=bench_database_url().replace("postgresql://", "postgresql+psycopg://"),
        auth_jwt_secret=SecretStr(JWT_SECRET),
        cursor_secret=SecretStr(CURSOR_SECRET),
        log_format="json",
        db_pool_size=SLOTS,
        db_max_overflow=0,
        db_acquire_timeout_seconds=0.02,
    )
    app = create_app(settings)
    statuses: list[int] = []
    signed, anonymous = _scope(user, _token(user)), _scope(user, None)

    async def served(count: int) -> None:
        for _ in range(count // SLOTS):
            await asyncio.gather(*(_call(app, signed, statuses) for _ in range(SLOTS)))

    async def refused(count: int) -> None:
        calls = asyncio.gather(*(_call(app, signed, statuses) for _ in range(count)))
        await _holding_every_slot(app.state.database, calls)

    async def unauthenticated(count: int) -> None:
        await asyncio.gather(*(_call(app, anonymous, statuses) for _ in range(count)))

    variants: dict[str, tuple[Callable[[int], Awaitable[None]], int]] = {
        "served (200)": (served, 200),
        "refused (503)": (refused, 503),
        "no token (401)": (unauthenticated, 401),
    }
    cpu_us: dict[str, list[float]] = {name: [] for name in variants}
    async with app.router.lifespan_context(app):
        for run, _status in variants.values():  # warm-up: connections, prepared statements, caches
            await run(SLOTS * 10)
        for _ in range(rounds):
            for name, (run, status) in variants.items():
                statuses.clear()
                started = time.process_time()
                await run(requests)
                cpu_us[name].append((time.process_time() - started) / requests * 1e6)
                if set(statuses) != {status}:
                    raise RuntimeError(f"{name}: answered {sorted(set(statuses))}")
    return {name: statistics.median(figures) for name, figures in cpu_us.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--requests", type=int, default=1000, help="requests a variant per round")
    args = parser.parse_args()
    medians = asyncio.run(measure(args.rounds, args.requests))
    page = medians["served (200)"]
    for name, cpu in medians.items():
        print(f"{name:>15}: {cpu:6.0f} us of CPU a request, {cpu / page:4.0%} of a served page")


if __name__ == "__main__":
    main()
