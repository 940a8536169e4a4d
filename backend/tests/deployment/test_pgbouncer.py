"""Several workers behind PgBouncer in transaction pooling mode, as several hosts share one PostgreSQL.

Debian's pgbouncer runs on a free loopback port in front of the test database; the service runs as
`make serve` runs it (two uvicorn workers, production settings, DB_TRANSACTION_POOLER=true) and the
whole API flow goes through it, often enough that psycopg would have prepared its statements.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import IN_CI, make_token
from tests.processes import SERVE, free_port, running_service, unprivileged

pytestmark = pytest.mark.slow
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
ROUNDS = 12


@contextlib.contextmanager
def pgbouncer_in_front_of(database_url: str) -> Iterator[str]:
    if not Path(PGBOUNCER).exists():
        message = "pgbouncer is not installed (apt-get install pgbouncer): the PgBouncer test did not run"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    target = urlsplit(database_url.replace("postgresql+psycopg://", "postgresql://"))
    root = Path(tempfile.mkdtemp(prefix="tasks-pgbouncer-"))
    port = free_port()
    database = target.path.lstrip("/")
    (root / "userlist.txt").write_text(f'"{target.username}" ""\n')
    (root / "pgbouncer.ini").write_text(
        f"[databases]\n{database} = host={target.hostname} port={target.port or 5432} dbname={database}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {root / 'userlist.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 4\nmax_client_conn = 200\n"
        f"logfile = {root / 'pgbouncer.log'}\npidfile = {root / 'pgbouncer.pid'}\n"
    )
    run_as = unprivileged(root)
    for child in root.iterdir():
        shutil.chown(child, *(("postgres", "postgres") if run_as else (None, None)))
    process = subprocess.Popen([*run_as, PGBOUNCER, str(root / "pgbouncer.ini")])  # noqa: S603
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        yield f"postgresql://{target.username}@127.0.0.1:{port}/{database}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _flow(base_url: str, worker: int) -> list[int]:
    """The integration flow through HTTP; returns every status it saw."""
    user_id = f"pooled-{worker}-{time.monotonic_ns()}"
    statuses: list[int] = []
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {make_token(user_id)}"}) as client:
        tasks = f"/api/v1/users/{user_id}/tasks"
        for round_number in range(ROUNDS):
            created = client.post(
                tasks, json={"title": f"t{round_number}"}, headers={"Idempotency-Key": f"k{round_number}"}
            )
            replayed = client.post(
                tasks, json={"title": f"t{round_number}"}, headers={"Idempotency-Key": f"k{round_number}"}
            )
            assert replayed.json()["id"] == created.json()["id"]
            url = created.headers["location"]
            page = client.get(tasks, params={"limit": 2})
            cursor = page.json()["next_cursor"]
            responses = [
                created,
                replayed,
                page,
                client.get(tasks, params={"limit": 2, "cursor": cursor}) if cursor else page,
                client.get(url),
                client.get(url, headers={"If-None-Match": created.headers["etag"]}),
                client.put(url, json={"title": "replaced"}),
                client.patch(url, json={"title": "stale"}, headers={"If-Match": created.headers["etag"]}),
                client.patch(url, json={"description": "edited"}, headers={"If-Match": '"2"'}),
                client.patch(url + "/complete"),
            ]
            if round_number % 2:
                responses.append(client.delete(url))
            statuses.extend(response.status_code for response in responses)
    return statuses


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_workers_behind_pgbouncer_in_transaction_mode(database_url: str) -> None:
    with pgbouncer_in_front_of(database_url) as pooled_url:
        env = {
            "ENVIRONMENT": "production",
            "WEB_CONCURRENCY": "2",
            "DB_TRANSACTION_POOLER": "true",
            "DB_POOL_SIZE": "3",
            "LOG_FORMAT": "json",
        }
        with running_service(pooled_url, launcher=SERVE, env=env) as service:
            with ThreadPoolExecutor(max_workers=4) as pool:
                results = list(pool.map(lambda worker: _flow(service.base_url, worker), range(4)))
            metrics = httpx.get(service.base_url + "/metrics").text
        log = service.log()

    expected_round = [201, 201, 200, 200, 200, 304, 200, 412, 200, 200]
    for statuses in results:
        assert statuses == [status for n in range(ROUNDS) for status in expected_round + ([204] if n % 2 else [])]
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert sum(record["message"].startswith("Started server process") for record in records) == 2
    assert {"method", "route", "status", "duration_ms", "request_id", "user_id"} <= set(
        next(record for record in records if record["logger"] == "src.access")
    )
    assert 'tasks_api_task_operations_total{operation="create"}' in metrics
