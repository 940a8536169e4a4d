"""`make bench`: the service against the bare-ASGI baseline, operation by operation, then list latency
as one user's task count grows from a thousand to a million.

Both apps run on loopback against the same PostgreSQL database (BENCH_DATABASE_URL), each driven by wrk
at the same concurrency for the same time, alternating service and baseline runs (A B A B ...) so that
drift on a noisy machine hits both alike. Figures are medians over the rounds; ratios compare the two
within this one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import psycopg
from alembic import command

from bench import overload, report
from bench.seed import bench_database_url, heavy_user, regular_user, seed, wanted_tasks
from src.core.config import BACKEND_DIR, Settings
from src.core.database import alembic_config
from src.models.task import TaskPriority, TaskSort, TaskStatusFilter
from src.services.pagination import ListShape, PagePosition, encode_cursor
from src.services.sync_service import SyncToken, encode_token
from src.services.task_listing import TaskFilters

JWT_SECRET = "bench-jwt-secret-that-is-long-enough-0123456789"
CURSOR_SECRET = "bench-cursor-secret-that-is-long-enough-000"
OPERATIONS = ["list", "get", "create", "patch", "toggle"]
# name: (connections, whether the clients wait the Retry-After of a 503 before asking again)
OVERLOAD_SCENARIOS = {"32": (32, False), "1024": (1024, False), "1024 retry-after": (1024, True)}
BASELINE_SCENARIOS = {"baseline 32": (32, False), "baseline 1024": (1024, False)}
# The service again with a wait for a slot so long that nothing is refused, at 1,024 connections: what the
# service itself keeps with a thousand requests in flight, apart from what its refusals cost.
UNBOUNDED_SCENARIOS = {"unbounded 1024": (1024, False)}
UNBOUNDED_WAIT_SECONDS = "3600"
SERVICE_COMMAND = ["-m", "src.cli", "serve", "--host", "127.0.0.1"]
OVERLOAD_MEDIANS = ("goodput_rps", "p50_ms", "p99_ms", "probe_p99_ms", "probe_max_ms")
CPU_FIGURES = ("worker_cpu_ms_per_answer", "worker_cpu_share", "stolen_share")
ACQUIRE_TIMEOUT_DEFAULT = Settings.model_fields["db_acquire_timeout_seconds"].default
HEAVY_SIZES = [1_000, 100_000, 1_000_000]
PAGE_SIZE = 50  # the list's default `limit`
LUA = (Path(__file__).parent / "wrk" / "operation.lua").read_text()
SORT_COLUMNS = {
    "-created_at": ("created_at", "DESC"),
    "created_at": ("created_at", "ASC"),
    "-updated_at": ("updated_at", "DESC"),
    "updated_at": ("updated_at", "ASC"),
    "title": ("title", "ASC"),
    "-title": ("title", "DESC"),
    "due_at": ("due_at", "ASC"),
    "-due_at": ("due_at", "DESC"),
    "priority": ("priority", "ASC"),
    "-priority": ("priority", "DESC"),
}


@dataclass(frozen=True)
class FilterCase:
    """A filtered list in the scale run: its query string, the same filter in SQL (to find a deep page's
    position), and whether a deep page means anything (a rare word has a page of matches at most)."""

    query: dict[str, str]
    where: str
    deep: bool = True
    sort: str = "-created_at"
    # Set on a case shown for what it costs rather than held to the target, saying why.
    outside_target: str | None = None

    @property
    def name(self) -> str:
        shown = {**self.query, **({"sort": self.sort} if self.sort != "-created_at" else {})}
        return "&".join(f"{key}={value}" for key, value in shown.items())

    @property
    def filters(self) -> TaskFilters:
        return TaskFilters.of(
            priorities=[TaskPriority(self.query["priority"])] if "priority" in self.query else None,
            tags=[self.query["tag"]] if "tag" in self.query else None,
            due_before=datetime.fromisoformat(self.query["due_before"]) if "due_before" in self.query else None,
            due_after=datetime.fromisoformat(self.query["due_after"]) if "due_after" in self.query else None,
            query=self.query.get("q"),
        )


# bench/seed.py puts each of ten tags on a tenth of the tasks, priorities evenly, due dates on 70% within
# 2025, `milk` in a tenth of the titles and `quokka` in 0.01%.
FILTER_CASES = [
    FilterCase({"tag": "work"}, "EXISTS (SELECT 1 FROM task_tags g WHERE g.task_id = tasks.id AND g.tag_key = 'work')"),
    FilterCase({"priority": "high"}, "priority = 3"),
    # A due window in due-date order (what a calendar or an agenda asks): one range of the due-date index.
    FilterCase(
        {"due_after": "2025-03-01T00:00:00+00:00", "due_before": "2025-03-08T00:00:00+00:00"},
        "due_at >= '2025-03-01T00:00:00Z' AND due_at < '2025-03-08T00:00:00Z'",
        sort="due_at",
    ),
    # The same window newest first: a range on one column in the order of another, which no index holds;
    # it reads the list in creation order until it has a page of the window's tasks, or sorts the window.
    FilterCase(
        {"due_after": "2025-03-01T00:00:00+00:00", "due_before": "2025-03-08T00:00:00+00:00"},
        "due_at >= '2025-03-01T00:00:00Z' AND due_at < '2025-03-08T00:00:00Z'",
        outside_target="a range on one column in the order of another: its cost grows with the window",
    ),
    FilterCase({"q": "milk"}, "(title_folded LIKE '%%milk%%' OR description_folded LIKE '%%milk%%')"),
    FilterCase({"q": "quokka"}, "(title_folded LIKE '%%quokka%%' OR description_folded LIKE '%%quokka%%')", deep=False),
]


@dataclass
class App:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _token(user_id: str) -> str:
    return jwt.encode({"sub": user_id, "exp": int(time.time()) + 86_400}, JWT_SECRET, algorithm="HS256")


def prepare_database(conninfo: str, users: int, tasks_per_user: int, heavy: list[int]) -> None:
    target = conninfo.rsplit("/", 1)
    with psycopg.connect(target[0] + "/postgres", autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [target[1]]).fetchone():
            admin.execute(f'CREATE DATABASE "{target[1]}"')
    command.upgrade(alembic_config(conninfo), "head")
    seed(conninfo, wanted_tasks(users, tasks_per_user, heavy))


def service_environment(acquire_timeout: str) -> dict[str, str]:
    """The service's settings in a benchmark: one worker, production mode, a pool of 10."""
    return {
        "ENVIRONMENT": "production",
        "DATABASE_URL": bench_database_url().replace("postgresql://", "postgresql+psycopg://"),
        "AUTH_JWT_SECRET": JWT_SECRET,
        "CURSOR_SECRET": CURSOR_SECRET,
        "WEB_CONCURRENCY": "1",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "DB_POOL_SIZE": "10",
        "DB_MAX_OVERFLOW": "0",
        "DB_ACQUIRE_TIMEOUT_SECONDS": acquire_timeout,
    }


@contextlib.contextmanager
def running(
    name: str,
    args: list[str],
    env: dict[str, str],
    ready_path: str,
    log: Path,
    *,
    launcher: Sequence[str] = (),
    start_seconds: float = 30,
) -> Iterator[App]:
    """`python args --port P` (under `launcher`, if any), until it answers `ready_path`, then stopped."""
    port = _free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*launcher, sys.executable, *args, "--port", str(port)],
            cwd=BACKEND_DIR,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    app = App(name, process, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + start_seconds
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (
                    httpx.get(
                        app.base_url + ready_path, headers={"Authorization": f"Bearer {_token('bench-user-0')}"}
                    ).status_code
                    == 200
                ):
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{name} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield app
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _lua(method: str, prefix: str, ids: list[str], suffix: str, body: str | None, token: str) -> str:
    id_list = ",".join(f'"{task_id}"' for task_id in ids)
    lua_body = "nil" if body is None else json.dumps(body)
    return (
        f'METHOD = "{method}"\nPREFIX = "{prefix}"\nIDS = {{{id_list}}}\nSUFFIX = "{suffix}"\n'
        f'BODY = {lua_body}\nTOKEN = "{token}"\n' + LUA
    )


def wrk(url: str, script: str, *, seconds: float, connections: int, threads: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    output = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "5s",
            "-s",
            file.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(file.name)
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    figures: dict[str, float] = json.loads(line.removeprefix("BENCH "))
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    return figures


def operation_scripts(conninfo: str) -> dict[str, tuple[str, str]]:
    """(path, wrk script) for each operation; each works on its own user's tasks."""
    users = {operation: regular_user(index) for index, operation in enumerate(OPERATIONS)}
    with psycopg.connect(conninfo) as connection:
        ids = {
            operation: [
                str(row[0])
                for row in connection.execute("SELECT id FROM tasks WHERE user_id = %s ORDER BY id LIMIT 100", [user])
            ]
            for operation, user in users.items()
        }
    scripts = {}
    for operation, user in users.items():
        prefix = f"/api/v1/users/{user}/tasks"
        token = _token(user)
        scripts[operation] = {
            "list": (prefix, _lua("GET", prefix, [], "", None, token)),
            "get": (prefix, _lua("GET", prefix, ids["get"], "", None, token)),
            "create": (prefix, _lua("POST", prefix, [], "", '{"title": "A benchmark task"}', token)),
            "patch": (prefix, _lua("PATCH", prefix, ids["patch"], "", '{"title": "Renamed by the benchmark"}', token)),
            "toggle": (prefix, _lua("PATCH", prefix, ids["toggle"], "/complete", None, token)),
        }[operation]
    return scripts


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def compare(
    service: App, baseline: App, scripts: dict[str, tuple[str, str]], args: argparse.Namespace
) -> dict[str, Any]:
    operations = [operation for operation in OPERATIONS if operation in args.operations.split(",")]
    runs: dict[str, dict[str, list[dict[str, float]]]] = {op: {"service": [], "baseline": []} for op in operations}
    for app in (service, baseline):  # warm-up: connections, caches, prepared statements
        for operation in operations:
            path, script = scripts[operation]
            wrk(app.base_url + path, script, seconds=2, connections=args.connections, threads=args.threads)
    for round_number in range(1, args.rounds + 1):
        for operation in operations:
            path, script = scripts[operation]
            for app in (service, baseline):
                figures = wrk(
                    app.base_url + path,
                    script,
                    seconds=args.duration,
                    connections=args.connections,
                    threads=args.threads,
                )
                runs[operation][app.name].append(figures)
                print(
                    f"round {round_number} {operation:>6} {app.name:>8}: {figures['rps']:8.0f} req/s  "
                    f"p50 {figures['p50_us'] / 1000:6.2f} ms  p99 {figures['p99_us'] / 1000:6.2f} ms"
                    f"  errors {figures['socket_errors'] + figures['non_2xx']:.0f}",
                    flush=True,
                )
    summary: dict[str, Any] = {}
    for operation, by_app in runs.items():
        medians = {
            name: {key: statistics.median(run[key] for run in app_runs) for key in ("rps", "p50_us", "p99_us")}
            | {"errors": sum(run["socket_errors"] + run["non_2xx"] for run in app_runs)}
            for name, app_runs in by_app.items()
        }
        # Each round runs the service and the baseline back to back, so their ratio within the round is
        # what drift on a shared machine disturbs least: the ratios are medians of those.
        pairs = list(zip(by_app["service"], by_app["baseline"], strict=True))
        summary[operation] = {
            **medians,
            "rps_ratio": statistics.median(service["rps"] / baseline["rps"] for service, baseline in pairs),
            "p99_ratio": statistics.median(service["p99_us"] / baseline["p99_us"] for service, baseline in pairs),
        }
    return {"operations": summary, "runs": runs}


def deep_cursor(
    connection: psycopg.Connection[Any], user_id: str, sort: str, depth: float, case: FilterCase | None = None
) -> str:
    """The cursor of the page `depth` (0 to 1) of the way down the list, found with OFFSET; less deep where
    a full page would not remain after it, so that a deep page holds as many tasks at every size (with a
    tenth of 1,000 tasks matching, 90% deep would leave 10)."""
    column, direction = SORT_COLUMNS[sort]
    where = f"user_id = %(user)s AND {case.where}" if case else "user_id = %(user)s"
    matches = connection.execute(f"SELECT count(*) FROM tasks WHERE {where}", {"user": user_id}).fetchone()
    assert matches is not None
    offset = min(int(matches[0] * depth), max(0, matches[0] - PAGE_SIZE - 1))  # the page starts after this row
    row = connection.execute(
        f"SELECT {column}, id FROM tasks WHERE {where} "
        f"ORDER BY {column} IS NULL, {column} {direction}, id {direction} OFFSET %(offset)s LIMIT 1",
        {"user": user_id, "offset": offset},
    ).fetchone()
    assert row is not None
    shape = ListShape(TaskSort(sort), TaskStatusFilter.ALL, case.filters.digest() if case else None)
    return encode_cursor(PagePosition(row[0], row[1]), key=CURSOR_SECRET.encode(), user_id=user_id, shape=shape)


def _page_lengths(service: App, targets: dict[tuple[str, str], dict[int, tuple[str, str]]]) -> dict[str, Any]:
    """How many entries each scale target's page holds, by case, page and size."""
    lengths: dict[str, Any] = {}
    for (name, page), urls in targets.items():
        for size, (path, _script) in urls.items():
            token = _token(heavy_user(size))
            answer = httpx.get(service.base_url + path, headers={"Authorization": f"Bearer {token}"})
            answer.raise_for_status()
            entries = next(value for value in answer.json().values() if isinstance(value, list))
            lengths.setdefault(name, {}).setdefault(page, {})[str(size)] = len(entries)
    return lengths


def sync_token(connection: psycopg.Connection[Any], user_id: str, behind: int) -> str:
    """A change-feed token `behind` changes before the user's last."""
    row = connection.execute(
        "SELECT seq, task_id FROM task_changes WHERE user_id = %s ORDER BY seq DESC, task_id DESC OFFSET %s LIMIT 1",
        [user_id, behind],
    ).fetchone()
    assert row is not None, f"{user_id} has too few changes: seed again"
    token = SyncToken(seq=row[0], task_id=row[1], issued_at=datetime.now(UTC))
    return encode_token(token, key=CURSOR_SECRET.encode(), user_id=user_id)


def scale(
    service: App, conninfo: str, heavy: list[int], args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    """p50 latency of the first page and of a page 90% deep, for every sort and filter, as one user's list
    grows: the median over `--scale-rounds` rounds, each of which measures one case at every size back to
    back (in a rotated order), so that drift on a noisy machine hits the sizes of a case alike. Also how
    many tasks (or changes) each measured page holds at each size: pages of unequal length cost unequal
    work.

    It starts from a settled database: the write operations before it leave dead index entries and dirty
    pages, whose vacuum or checkpoint would otherwise land in the middle of some sizes' runs."""
    runs: dict[tuple[str, str], dict[int, list[float]]] = {}
    targets: dict[tuple[str, str], dict[int, tuple[str, str]]] = {}
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE) tasks")
        connection.execute("VACUUM (ANALYZE) task_tags")
        connection.execute("VACUUM (ANALYZE) task_changes")
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):  # CHECKPOINT needs pg_checkpoint
            connection.execute("CHECKPOINT")
        for size in heavy:
            user = heavy_user(size)
            prefix = f"/api/v1/users/{user}/tasks"
            script = _lua("GET", prefix, [], "", None, _token(user))
            cases: list[tuple[str, str, str | None]] = []
            for sort in SORT_COLUMNS:
                first = f"{prefix}?sort={sort}"
                cases.append((sort, first, f"{first}&cursor={deep_cursor(connection, user, sort, 0.9)}"))
            for case in FILTER_CASES:
                first = f"{prefix}?{urlencode({**case.query, 'sort': case.sort})}"
                deep = f"{first}&cursor={deep_cursor(connection, user, case.sort, 0.9, case)}" if case.deep else None
                cases.append((case.name, first, deep))
            changes = f"/api/v1/users/{user}/changes"
            for name, behind in (("changes, polling", 0), ("changes, 50 behind", 50)):
                cases.append((name, f"{changes}?since={sync_token(connection, user, behind)}", None))
            for name, first, deep in cases:
                for page, path in (("first", first), ("deep", deep)):
                    if path is not None:
                        lua = script.replace(f'PREFIX = "{prefix}"', f'PREFIX = "{path}"')
                        targets.setdefault((name, page), {})[size] = (path, lua)
    page_lengths = _page_lengths(service, targets)
    for round_number in range(args.scale_rounds):
        sizes = heavy[round_number % len(heavy) :] + heavy[: round_number % len(heavy)]
        for (name, page), urls in targets.items():
            for size in sizes:
                path, lua = urls[size]
                figures = wrk(service.base_url + path, lua, seconds=args.scale_duration, connections=2, threads=1)
                runs.setdefault((name, page), {}).setdefault(size, []).append(figures["p50_us"])
                print(
                    f"scale round {round_number + 1} {size:>9,} tasks {name:>24} {page:>5} page: "
                    f"p50 {figures['p50_us'] / 1000:6.2f} ms",
                    flush=True,
                )
    results: dict[str, Any] = {}
    for (name, page), p50s_by_size in runs.items():
        smallest, largest = min(p50s_by_size), max(p50s_by_size)
        by_size: dict[str, Any] = {str(size): statistics.median(p50s) for size, p50s in p50s_by_size.items()}
        # As for the operations, the ratio is the median of each round's own ratio: the sizes of a case run
        # back to back in a round, and a noisy machine's latency can step between runs (by a millisecond,
        # seen here), which would decide a ratio whenever the rounds' medians fell on different steps.
        by_size["ratio"] = statistics.median(
            big / small for big, small in zip(p50s_by_size[largest], p50s_by_size[smallest], strict=True)
        )
        results.setdefault(name, {})[page] = by_size
    return results, page_lengths


def _overload_rounds(
    apps: list[tuple[App, dict[str, tuple[int, bool]]]],
    path: str,
    token: str,
    args: argparse.Namespace,
    *,
    probed: App,
) -> dict[str, list[dict[str, Any]]]:
    """Each app's scenarios in turn, round after round; the health probes are asked of `probed` only."""
    runs: dict[str, list[dict[str, Any]]] = {scenario: [] for _, scenarios in apps for scenario in scenarios}
    for round_number in range(1, args.overload_rounds + 1):
        for app, scenarios in apps:
            for scenario, (connections, honour_retry_after) in scenarios.items():
                figures = overload.run(
                    app.port,
                    path,
                    token,
                    connections=connections,
                    seconds=args.overload_duration,
                    honour_retry_after=honour_retry_after,
                    probes=("/healthz", "/readyz") if app is probed else (),
                    worker_pid=app.process.pid,
                )
                runs[scenario].append(figures)
                print(
                    f"overload round {round_number} {scenario:>18}: goodput {figures['goodput_rps']:7.0f}/s  "
                    f"p50 {figures['p50_ms']:7.1f} ms  p99 {figures['p99_ms']:7.1f} ms  "
                    f"503 {figures['refused_503']:6d}  "
                    f"client errors {figures['client_errors'] + figures['client_timeouts']}  "
                    f"probes p99 {figures['probe_p99_ms']:.1f} ms, worst {figures['probe_max_ms']:.1f} ms  "
                    f"worker CPU {figures.get('worker_cpu_share', math.nan):.0%}, "
                    f"{figures.get('worker_cpu_ms_per_answer', math.nan):.2f} ms an answer  "
                    f"stolen {figures.get('stolen_share', math.nan):.1%}",
                    flush=True,
                )
    return runs


def overloaded(service: App, baseline: App, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """One worker's list route at 32, then 1,024 connections (opened and warmed before the measured window,
    as a proxy's pooled connections would be), with the health probes asked every 100 ms throughout; at
    1,024 twice: clients that retry a refusal at once, and clients that wait the Retry-After the 503 asks
    for. Then a second service process that waits for a slot without bound (it never refuses) at 1,024,
    and the baseline at 32 and 1,024 (it never refuses either: every request waits for the pool), for what
    the service and the bare stack keep with a thousand requests in flight, apart from any refusal. Each
    run also reads, from /proc, the worker's CPU time per answer and the share of the machine's time the
    hypervisor gave elsewhere, so a reader can tell a cost of the load from a slower machine. Figures are
    medians over the rounds; each ratio is the median over the rounds of that round's 1,024/32 ratio, as
    for the operations."""
    user = regular_user(0)
    path = f"/api/v1/users/{user}/tasks"
    with running(
        "service, unbounded wait",
        SERVICE_COMMAND,
        service_environment(UNBOUNDED_WAIT_SECONDS),
        path,
        logs / "service-unbounded.log",
    ) as unbounded:
        runs = _overload_rounds(
            [(service, OVERLOAD_SCENARIOS), (unbounded, UNBOUNDED_SCENARIOS), (baseline, BASELINE_SCENARIOS)],
            path,
            _token(user),
            args,
            probed=service,
        )
    summary = {
        scenario: {
            key: statistics.median(run[key] for run in scenario_runs)
            for key in (*OVERLOAD_MEDIANS, *(key for key in CPU_FIGURES if key in scenario_runs[0]))
        }
        | {
            key: sum(run[key] for run in scenario_runs)
            for key in ("refused_503", "client_errors", "client_timeouts", "probe_failures", "answered")
        }
        for scenario, scenario_runs in runs.items()
    }

    def ratio(busy: str, calm: str, key: str = "goodput_rps") -> float:
        pairs = zip(runs[busy], runs[calm], strict=True)
        ratios: list[float] = [high.get(key, math.nan) / low.get(key, math.nan) for high, low in pairs]
        return statistics.median(ratios)

    cost_per_answer = "worker_cpu_ms_per_answer"
    return {
        # What an answer costs the worker at 1,024 connections against 32: above 1, each answer costs more
        # with a thousand requests in flight (refusals included for the service).
        "cpu_per_answer_ratio": ratio("1024", "32", cost_per_answer),
        "cpu_per_answer_ratio_retry_after": ratio("1024 retry-after", "32", cost_per_answer),
        "baseline_cpu_per_answer_ratio": ratio("baseline 1024", "baseline 32", cost_per_answer),
        "connections": {scenario: summary[scenario] for scenario in OVERLOAD_SCENARIOS},
        "baseline": {scenario: summary[scenario] for scenario in BASELINE_SCENARIOS},
        "unbounded": {scenario: summary[scenario] for scenario in UNBOUNDED_SCENARIOS},
        "goodput_ratio": ratio("1024", "32"),
        "goodput_ratio_retry_after": ratio("1024 retry-after", "32"),
        "baseline_goodput_ratio": ratio("baseline 1024", "baseline 32"),
        # The service's 1,024 without refusals against its own 32 (where nothing is refused either).
        "unbounded_goodput_ratio": ratio("unbounded 1024", "32"),
        "unbounded_cpu_per_answer_ratio": ratio("unbounded 1024", "32", cost_per_answer),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scale-duration", type=float, default=2, help="seconds per scale run")
    parser.add_argument("--scale-rounds", type=int, default=3)
    parser.add_argument("--heavy", default=",".join(map(str, HEAVY_SIZES)))
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--overload-duration", type=float, default=15, help="seconds per overload run")
    parser.add_argument("--overload-rounds", type=int, default=3)
    parser.add_argument("--skip-overload", action="store_true")
    parser.add_argument(
        "--operations", default=",".join(OPERATIONS), help="which to measure, comma-separated (default: all)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `sudo apt-get install wrk` (Debian's package), then run `make bench` again")
    heavy = [int(size) for size in args.heavy.split(",") if size]
    conninfo = bench_database_url()
    prepare_database(conninfo, users=len(OPERATIONS) + 5, tasks_per_user=100, heavy=heavy)
    scripts = operation_scripts(conninfo)
    logs = Path(tempfile.mkdtemp(prefix="tasks-bench-"))
    service_env = service_environment(os.environ.get("DB_ACQUIRE_TIMEOUT_SECONDS", str(ACQUIRE_TIMEOUT_DEFAULT)))
    baseline_env = {"BENCH_DATABASE_URL": conninfo, "CURSOR_SECRET": CURSOR_SECRET}
    list_path = "/api/v1/users/bench-user-0/tasks"
    with (
        running("service", SERVICE_COMMAND, service_env, list_path, logs / "service.log") as service,
        running(
            "baseline",
            [
                "-m",
                "uvicorn",
                "bench.baseline:app",
                "--host",
                "127.0.0.1",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            baseline_env,
            list_path,
            logs / "baseline.log",
        ) as baseline,
    ):
        comparison = compare(service, baseline, scripts, args)
        comparison["service_peak_rss_mb"] = peak_rss_mb(service.process.pid)
        comparison["overload"] = {} if args.skip_overload else overloaded(service, baseline, args, logs)
        comparison["scale"], comparison["scale_page_lengths"] = (
            ({}, {}) if args.skip_scale else scale(service, conninfo, heavy, args)
        )
        comparison["scale_outside_target"] = {
            case.name: case.outside_target for case in FILTER_CASES if case.outside_target
        }
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "settings": {
            "duration_s": args.duration,
            "rounds": args.rounds,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "heavy_sizes": heavy,
            "scale_duration_s": args.scale_duration,
            "scale_rounds": args.scale_rounds,
            "overload_duration_s": args.overload_duration,
            "overload_rounds": args.overload_rounds,
            "db_acquire_timeout_s": float(service_env["DB_ACQUIRE_TIMEOUT_SECONDS"]),
        },
        **comparison,
    }
    full_run = args.operations == parser.get_default("operations") and not (args.skip_scale or args.skip_overload)
    path = report.save(results, full_run=full_run)
    print()
    print(report.table(results))
    print(f"\nresults: {path}\nservice log: {logs / 'service.log'}")


if __name__ == "__main__":
    main()
