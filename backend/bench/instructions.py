"""What a served 50-task page costs the worker in instructions, through the whole stack (uvicorn, httptools,
uvloop, the app, the driver), with 32 and with 1,024 connections in a closed loop. The worker runs under
valgrind's callgrind, which counts the instructions it runs and the misses of a simulated cache (here a
core with 32 KiB first-level caches and a 1 MiB second level), the same counts whatever else the machine is
doing. What the counts leave out is the kernel's work and the real caches, shared with other processes.

`python -m bench.instructions` (valgrind; BENCH_DATABASE_URL's server, seeded by `make bench`). The worker
runs some fifty times slower under callgrind: a run takes about eight minutes. Requests wait for a
database slot without a bound here (the bound is a wall-clock time, which callgrind stretches), so every
answer is a served page.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import uvloop

from bench.overload import Tally, _Client, _request
from bench.run import SERVICE_COMMAND, UNBOUNDED_WAIT_SECONDS, App, _token, running, service_environment
from bench.seed import regular_user

CACHES = ["--D1=32768,8,64", "--I1=32768,8,64", "--LL=1048576,16,64"]
EVENTS = {"Ir": "instructions", "I1mr": "L1i misses", "D1mr": "L1d read misses", "DLmr": "L2 read misses"}


def worker_under_callgrind(output: Path) -> contextlib.AbstractContextManager[App]:
    """The service, one worker, under callgrind (valgrind runs it in its own process: the same pid)."""
    launcher = ["valgrind", "--tool=callgrind", "--cache-sim=yes", *CACHES, f"--callgrind-out-file={output}"]
    return running(
        "service under callgrind",
        SERVICE_COMMAND,
        service_environment(UNBOUNDED_WAIT_SECONDS),
        "/healthz",
        output.parent / "service.log",
        launcher=launcher,
        start_seconds=600,
    )


async def _callgrind_control(command: str, pid: int) -> None:
    control = await asyncio.create_subprocess_exec(
        "callgrind_control", command, str(pid), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    if await control.wait():
        raise RuntimeError(f"callgrind_control {command} failed")


async def _counted(worker: App, connections: int, warmup: float, seconds: float) -> int:
    """Pages answered in the window (whenever asked for), with callgrind's counters zeroed at its start and
    dumped at its end."""
    user = regular_user(0)
    request = _request("GET", f"/api/v1/users/{user}/tasks", {"Authorization": f"Bearer {_token(user)}"})
    loop = asyncio.get_running_loop()
    tally = Tally(window=(float("inf"), float("inf")))
    clients = [
        (await loop.create_connection(lambda: _Client(request, tally, False), "127.0.0.1", worker.port))[1]
        for _ in range(connections)
    ]
    await asyncio.sleep(warmup)
    await _callgrind_control("--zero", worker.process.pid)
    tally.window = (0.0, float("inf"))  # every answer from now on, whenever its request was sent
    await asyncio.sleep(seconds)
    await _callgrind_control(f"--dump={connections}", worker.process.pid)
    tally.window = (float("inf"), float("inf"))
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    if tally.refused or tally.other_status:
        raise RuntimeError(f"{connections} connections: answers other than 2xx {tally.other_status}")
    return len(tally.answered_ms)


def _counts(dump: Path) -> dict[str, int]:
    lines = dump.read_text().splitlines()
    names = next(line for line in lines if line.startswith("events:")).split()[1:]
    values = next(line for line in lines if line.startswith("summary:")).split()[1:]
    return dict(zip(names, map(int, values), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60, help="the counted window at each load")
    args = parser.parse_args()
    if shutil.which("callgrind_control") is None:
        sys.exit("valgrind is not installed: `sudo apt-get install valgrind` (Debian's package), then run again")
    per_page: dict[int, dict[str, float]] = {}
    output = Path(tempfile.mkdtemp(prefix="tasks-callgrind-")) / "callgrind.out"
    with worker_under_callgrind(output) as worker:
        for dump_number, (connections, warmup) in enumerate([(32, 30.0), (1024, 90.0)], start=1):
            pages = uvloop.run(_counted(worker, connections, warmup, args.seconds))
            counts = _counts(Path(f"{output}.{dump_number}"))
            per_page[connections] = {event: counts[event] / pages for event in EVENTS}
            print(f"{connections:>5} connections: {pages} pages counted, in {output}.{dump_number}", flush=True)
    print(f"{'a served page':>16} {'32 connections':>15} {'1,024':>12} {'1,024/32':>9}")
    for event, name in EVENTS.items():
        calm, busy = per_page[32][event], per_page[1024][event]
        print(f"{name:>16} {calm:15,.0f} {busy:12,.0f} {busy / calm:8.3f}x")
    print(f"function by function: callgrind_annotate {output}.1 (and .2)")


if __name__ == "__main__":
    main()
