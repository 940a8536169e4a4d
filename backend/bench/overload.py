"""Closed-loop HTTP/1.1 load that keeps each answer's status and latency apart.

wrk reports one latency distribution for every answer together; the overload scenario needs the latency
of the answered requests apart from the refusals (503), and the health probes' latency while the load
runs. Each connection sends a request, reads the whole answer and sends the next, as wrk does. Each is a
bare asyncio protocol on uvloop, so the client costs a small fraction of what the service spends on a
request and leaves the machine's cores to the service and the database.
"""

from __future__ import annotations

import asyncio
import http.client
import multiprocessing
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

PROBE_INTERVAL_SECONDS = 0.1
_HEAD_END = b"\r\n\r\n"
_LAST_CHUNK = b"\r\n0\r\n\r\n"


@dataclass(frozen=True)
class CpuReading:
    """The worker's CPU time and the machine's stolen time (what the hypervisor gave other guests), from
    /proc, in seconds."""

    worker: float
    stolen: float
    machine: float

    @classmethod
    def now(cls, pid: int) -> CpuReading:
        ticks = os.sysconf("SC_CLK_TCK")
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        machine = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return cls((int(fields[11]) + int(fields[12])) / ticks, machine[7] / ticks, sum(machine[:8]) / ticks)


@dataclass
class Tally:
    window: tuple[float, float]
    cpu: list[CpuReading] = field(default_factory=list)  # at the window's start and end
    answered_ms: list[float] = field(default_factory=list)
    refused: int = 0
    other_status: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    timeouts: int = 0
    probes_ms: list[float] = field(default_factory=list)
    probe_failures: int = 0

    def counts(self, moment: float) -> bool:
        return self.window[0] <= moment <= self.window[1]


def _request(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass(frozen=True)
class _Answer:
    status: int
    length: int
    retry_after: float | None


def _answer(buffer: bytearray) -> _Answer | None:
    """The answer's status, total length and Retry-After, once it is whole in the buffer. The service's
    answers carry Content-Length; the baseline's are chunked, their JSON never holds the last chunk's
    marker."""
    head_end = buffer.find(_HEAD_END)
    if head_end < 0:
        return None
    length, retry_after, chunked = 0, None, False
    for line in bytes(buffer[:head_end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
        elif name.lower() == b"retry-after":
            retry_after = float(value)
        elif name.lower() == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    if chunked:
        end = buffer.find(_LAST_CHUNK, head_end)
        return _Answer(int(buffer[9:12]), end + len(_LAST_CHUNK), retry_after) if end >= 0 else None
    total = head_end + len(_HEAD_END) + length
    return _Answer(int(buffer[9:12]), total, retry_after) if len(buffer) >= total else None


class _Client(asyncio.Protocol):
    """One keep-alive connection in a closed loop: each answer sends the next request at once, or, for a
    client that honours Retry-After, a refusal sends it after the time the service asked for."""

    def __init__(self, request: bytes, tally: Tally, honour_retry_after: bool) -> None:
        self.request = request
        self.tally = tally
        self.honour_retry_after = honour_retry_after
        self.buffer = bytearray()
        self.sent_at = 0.0
        self.waiting = False  # asked to retry later: no request is out
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            return
        self.waiting = False
        self.sent_at = time.monotonic()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answer = _answer(self.buffer)
        if answer is None:
            return
        status = answer.status
        del self.buffer[: answer.length]
        if self.tally.counts(self.sent_at):
            if 200 <= status < 300:
                self.tally.answered_ms.append((time.monotonic() - self.sent_at) * 1000)
            elif status == 503:
                self.tally.refused += 1
            else:
                self.tally.other_status[status] = self.tally.other_status.get(status, 0) + 1
        if status == 503 and self.honour_retry_after and answer.retry_after:
            self.waiting = True
            asyncio.get_running_loop().call_later(answer.retry_after, self.send)
        else:
            self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)


def _probe(port: int, path: str, window: tuple[float, float], results: Any) -> None:
    """Asks a health route every 100 ms on a keep-alive connection of its own, as a load balancer does; in a
    process of its own, so its timing owes nothing to the load client. Puts (latencies, failures)."""
    tally = Tally(window=window)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    warm = False  # the first answer on a new connection is not a probe's: under load it waits to be accepted
    while time.monotonic() < window[1]:
        sent = time.monotonic()
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = 0
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        if warm and tally.counts(sent):
            tally.probes_ms.append((time.monotonic() - sent) * 1000)
            tally.probe_failures += status != 200
        warm = status != 0
        time.sleep(PROBE_INTERVAL_SECONDS)
    connection.close()
    results.put((tally.probes_ms, tally.probe_failures))


async def _drive(
    port: int,
    request: bytes,
    connections: int,
    warmup: float,
    seconds: float,
    give_up: float,
    probes: list[str],
    honour_retry_after: bool,
    worker_pid: int | None,
) -> Tally:
    loop = asyncio.get_running_loop()
    start = time.monotonic() + warmup
    tally = Tally(window=(start, start + seconds))
    clients: list[_Client] = []
    for _ in range(connections):
        try:
            _transport, client = await loop.create_connection(
                lambda: _Client(request, tally, honour_retry_after), "127.0.0.1", port
            )
            clients.append(client)
        except OSError:
            tally.errors += 1
    probe_results: Any = multiprocessing.Queue()
    probers = [
        multiprocessing.Process(target=_probe, args=(port, path, tally.window, probe_results)) for path in probes
    ]
    for prober in probers:
        prober.start()
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    if worker_pid is not None:
        tally.cpu.append(CpuReading.now(worker_pid))
    await _watch(clients, tally, give_up)
    if worker_pid is not None:
        tally.cpu.append(CpuReading.now(worker_pid))
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    for _prober in probers:
        latencies, failures = probe_results.get(timeout=30)
        tally.probes_ms += latencies
        tally.probe_failures += failures
    for prober in probers:
        prober.join()
    return tally


async def _watch(clients: list[_Client], tally: Tally, give_up: float) -> None:
    """Until the window ends, counts the connections the service closed or reset and the requests
    unanswered after `give_up` seconds."""
    lost: set[int] = set()
    end = tally.window[1]
    while time.monotonic() < end:
        await asyncio.sleep(min(0.25, max(0.0, end - time.monotonic())))
        now = time.monotonic()
        for index, client in enumerate(clients):
            if client.closed.done():
                if index not in lost and tally.counts(now):
                    tally.errors += 1  # a connection the service closed or reset
                lost.add(index)
            elif not client.waiting and now - client.sent_at > give_up and tally.counts(client.sent_at):
                tally.timeouts += 1
                client.sent_at = now  # counted once


def _percentile(values: list[float], percent: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(percent / 100 * (len(ordered) - 1)))]


def run(
    port: int,
    path: str,
    token: str,
    *,
    connections: int,
    seconds: float,
    warmup: float = 3,
    timeout: float = 10,
    probes: tuple[str, ...] = ("/healthz", "/readyz"),
    honour_retry_after: bool = False,
    worker_pid: int | None = None,
) -> dict[str, Any]:
    """Goodput (2xx a second), p50 and p99 of the 2xx answers, refusals (503), anything else, client-side
    connection errors and timeouts, and the health probes' p99 and worst latency, over `seconds`. Given
    the worker's process id, also the worker's CPU time per 2xx answer (refusals included: what each
    answer cost, all told) and the share of the machine's CPU time the hypervisor gave elsewhere."""
    request = _request("GET", path, {"Authorization": f"Bearer {token}"})
    drive = _drive(port, request, connections, warmup, seconds, timeout, list(probes), honour_retry_after, worker_pid)
    tally = uvloop.run(drive)
    cpu: dict[str, float] = {}
    if len(tally.cpu) == 2 and tally.answered_ms:
        start, end = tally.cpu
        cpu = {
            "worker_cpu_ms_per_answer": (end.worker - start.worker) / len(tally.answered_ms) * 1000,
            "worker_cpu_share": (end.worker - start.worker) / seconds,
            "stolen_share": (end.stolen - start.stolen) / max(end.machine - start.machine, 1e-9),
        }
    return cpu | {
        "connections": connections,
        "seconds": seconds,
        "goodput_rps": len(tally.answered_ms) / seconds,
        "answered": len(tally.answered_ms),
        "p50_ms": statistics.median(tally.answered_ms) if tally.answered_ms else float("nan"),
        "p99_ms": _percentile(tally.answered_ms, 99),
        "refused_503": tally.refused,
        "other_status": tally.other_status,
        "client_errors": tally.errors,
        "client_timeouts": tally.timeouts,
        "probe_p99_ms": _percentile(tally.probes_ms, 99),
        "probe_max_ms": max(tally.probes_ms, default=float("nan")),
        "probe_failures": tally.probe_failures,
    }
