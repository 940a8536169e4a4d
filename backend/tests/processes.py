"""Helpers for tests that run real processes: the service under uvicorn, a private PostgreSQL cluster."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from src.core.config import BACKEND_DIR
from tests.conftest import CURSOR_SECRET, IN_CI, JWT_SECRET


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


UVICORN = ("-m", "uvicorn", "src.main:create_app", "--factory", "--no-access-log", "--host", "127.0.0.1", "--port")
SERVE = ("-m", "src.cli", "serve", "--host", "127.0.0.1", "--port")
# The service mounted under a prefix in another ASGI app (tests/mounted_app.py).
MOUNTED = ("-m", "uvicorn", "tests.mounted_app:create_parent_app", *UVICORN[3:])


@contextlib.contextmanager
def running_service(
    database_url: str,
    *,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    launcher: tuple[str, ...] = UVICORN,
    health_path: str = "/healthz",
) -> Iterator[ServiceProcess]:
    """The service on a free loopback port, as an operator runs it: plain uvicorn, or `make serve`'s CLI."""
    port = free_port()
    log_path = Path(tempfile.mkdtemp()) / "service.log"
    environment = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "AUTH_JWT_SECRET": JWT_SECRET,
        "CURSOR_SECRET": CURSOR_SECRET,
        "DB_CONNECT_TIMEOUT_SECONDS": "2",
        **(env or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, *launcher, str(port), *extra_args],
            cwd=BACKEND_DIR,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    service = ServiceProcess(process=process, base_url=f"http://127.0.0.1:{port}", log_path=log_path)
    try:
        _wait_until_healthy(service, health_path)
        yield service
    finally:
        stop(process)


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM to the process we started, then SIGKILL if it has not exited within 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_healthy(service: ServiceProcess, health_path: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"the service exited at start-up:\n{service.log()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(service.base_url + health_path, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the service did not answer /healthz in {timeout}s:\n{service.log()}")


def unprivileged(directory: Path) -> list[str]:
    """PostgreSQL and PgBouncer refuse to run as root: as root, run them as `postgres`, owning `directory`."""
    if os.geteuid() != 0:
        return []
    shutil.chown(directory, "postgres", "postgres")
    return ["runuser", "-u", "postgres", "--"]


class PrivateCluster:
    """A throw-away PostgreSQL cluster from the installed server binaries, on a free loopback port."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.data_dir = root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_owner = unprivileged(root)
        self._run("initdb", "-D", str(self.data_dir), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(  # noqa: S603 - installed PostgreSQL tools
            [*self._as_owner, str(self.bin_dir / tool), *args], check=True, capture_output=True, timeout=120
        )

    def _pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir}"
        self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.data_dir / "server.log"), *args)

    def start(self) -> None:
        self._pg_ctl("start", "-w", "-t", "60")

    def stop(self, mode: str) -> None:
        self._pg_ctl("stop", "-m", mode, "-w", "-t", "60")

    def restart(self, mode: str) -> None:
        self._pg_ctl("restart", "-m", mode, "-w", "-t", "60")

    def wait_until_accepting(self, timeout: float = 30) -> float:
        """Polls until the server accepts connections; returns that moment (time.monotonic)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                result = subprocess.run(  # noqa: S603
                    [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"], check=False
                )
                if result.returncode == 0:
                    return time.monotonic()
            time.sleep(0.02)
        raise RuntimeError("the private PostgreSQL cluster did not come back")


def postgres_bin_dir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


@pytest.fixture
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        message = "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): the database fault test did not run"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="tasks-fault-"))
    cluster = PrivateCluster(bin_dir, root)
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
