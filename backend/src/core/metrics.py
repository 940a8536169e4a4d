"""Prometheus metrics. With several worker processes, set PROMETHEUS_MULTIPROC_DIR (`make serve`
does) so that /metrics adds up every worker's figures."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

HTTP_REQUESTS = Counter("tasks_api_http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "tasks_api_http_request_duration_seconds",
    "Time from receiving a request to the end of its response.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
POOL_IN_USE = Gauge(
    "tasks_api_db_pool_connections_in_use", "Database connections checked out.", multiprocess_mode="livesum"
)
POOL_IDLE = Gauge(
    "tasks_api_db_pool_connections_idle", "Database connections idle in the pool.", multiprocess_mode="livesum"
)
TASK_OPERATIONS = Counter("tasks_api_task_operations_total", "Task writes that were committed.", ["operation"])


def count_task_operation(operation: str) -> None:
    """Counts a committed write (`create`, `update`, ...)."""
    _task_operation_series(operation).inc()


@cache
def _task_operation_series(operation: str) -> Any:
    return TASK_OPERATIONS.labels(operation)


METRICS_MEDIA_TYPE = CONTENT_TYPE_LATEST


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@cache
def _request_series(method: str, route: str, status: int) -> tuple[Any, Any]:
    # Label sets are few (routes x methods x statuses); resolving each once keeps `.labels()` off the hot path.
    return HTTP_REQUESTS.labels(method, route, str(status)), HTTP_LATENCY.labels(method, route, str(status))


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    # A client can send any method name: only the standard ones become label values.
    count, latency = _request_series(method if method in _METHODS else "OTHER", route, status)
    count.inc()
    latency.observe(seconds)


def watch_pool(engine: AsyncEngine) -> None:
    """Pool gauges: read when /metrics is scraped; with several workers (multiprocess mode, where each
    writes its own figures to a file) kept current as connections are checked out and returned."""
    pool: Any = engine.sync_engine.pool
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        POOL_IN_USE.set_function(pool.checkedout)
        POOL_IDLE.set_function(pool.checkedin)
        return

    def update(*_: Any) -> None:
        POOL_IN_USE.set(pool.checkedout())
        POOL_IDLE.set(pool.checkedin())

    for name in ("checkout", "checkin", "connect", "close"):
        event.listen(engine.sync_engine, name, update)


def render_metrics() -> bytes:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
