"""What one request costs the app, in CPU time, by how it ends: a served 50-task page, a refusal (503, every
database slot held elsewhere) and a 401 (no token). The app is called in-process, without uvicorn, and
the three are measured in turn, round after round, so drift on a noisy machine hits them alike; the
figures are medians over the rounds, with each one's share of a served page.

`python -m bench.request_cost 2>/dev/null` (the access log goes to stderr; BENCH_DATABASE_URL's server,
seeded by `make bench`). With `--in-flight`, what a served page costs with 32 and with 1,024 requests in
flight in the app, without uvicorn or sockets: whether the app's own work grows with the load.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import uvloop
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


def _app(acquire_timeout: float) -> FastAPI:
    return create_app(
        Settings(
            environment="production",
            database_url=bench_database_url().replace("postgresql://", "postgresql+psycopg://"),
            auth_jwt_secret=SecretStr(JWT_SECRET),
            cursor_secret=SecretStr(CURSOR_SECRET),
            log_format="json",
            db_pool_size=SLOTS,
            db_max_overflow=0,
            db_acquire_timeout_seconds=acquire_timeout,
        )
    )


async def measure(rounds: int, requests: int) -> dict[str, float]:
    user = regular_user(0)
    app = _app(acquire_timeout=0.02)
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


async def in_flight(rounds: int, seconds: float) -> dict[int, float]:
    """CPU time per served page with 32 and with 1,024 requests in flight (closed loops of callers, as in
    the overload benchmark, without uvicorn or sockets, no refusals), in turn, round after round: the
    median over the rounds of each, and under key 0 the median of the rounds' 1,024/32 ratios."""
    user = regular_user(0)
    app = _app(acquire_timeout=3600)
    signed = _scope(user, _token(user))

    async def served_per_answer(callers: int) -> float:
        statuses: list[int] = []
        stopping = asyncio.Event()
        answered = 0

        async def caller() -> None:
            nonlocal answered
            while not stopping.is_set():
                await _call(app, signed, statuses)
                answered += 1

        tasks = [asyncio.create_task(caller()) for _ in range(callers)]
        await asyncio.sleep(1)  # every caller's first request is in
        first, started = answered, time.process_time()
        await asyncio.sleep(seconds)
        cpu, count = time.process_time() - started, answered - first
        stopping.set()
        await asyncio.gather(*tasks)
        if set(statuses) != {200}:
            raise RuntimeError(f"in flight: answered {sorted(set(statuses))}")
        return cpu / count * 1e6

    figures: dict[int, list[float]] = {32: [], 1024: []}
    async with app.router.lifespan_context(app):
        for _ in range(rounds):
            for callers, cpu_us in figures.items():
                cpu_us.append(await served_per_answer(callers))
    ratios = [busy / calm for calm, busy in zip(figures[32], figures[1024], strict=True)]
    return {0: statistics.median(ratios)} | {callers: statistics.median(cpu) for callers, cpu in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--requests", type=int, default=1000, help="requests a variant per round")
    parser.add_argument(
        "--in-flight",
        action="store_true",
        help="instead: CPU a served page with 32 and with 1,024 requests in flight, 4 s a run",
    )
    args = parser.parse_args()
    if args.in_flight:
        by_callers = uvloop.run(in_flight(args.rounds, seconds=4))  # the loop uvicorn serves on
        for callers in (32, 1024):
            print(f"{callers:>5} in flight: {by_callers[callers]:6.0f} us of CPU a served page")
        print(f"1,024 against 32: {by_callers[0]:.2f}x (median of the rounds' ratios)")
        return
    medians = asyncio.run(measure(args.rounds, args.requests))
    page = medians["served (200)"]
    for name, cpu in medians.items():
        print(f"{name:>15}: {cpu:6.0f} us of CPU a request, {cpu / page:4.0%} of a served page")


if __name__ == "__main__":
    main()
