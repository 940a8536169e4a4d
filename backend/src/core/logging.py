"""Logging set-up: one format for the service's own lines and uvicorn's, with the request id on each.

JSON lines for machines (production), readable lines for people (development). Records carry their
fields as `extra=`; tokens and request bodies are never passed to a logger.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
# What the current request did, written on its access line (see `record_event`); None outside a request.
request_events_var: ContextVar[dict[str, Any] | None] = ContextVar("request_events", default=None)
_events_logger = logging.getLogger("src.events")


def record_event(event: str, **fields: Any) -> None:
    """Records what happened (`task created`, with its task_id). Within a request it goes on the request's
    one access line, beside its route, status and user, instead of a line of its own: one line per request
    is easier to search, and logging is a good part of a request's cost. Outside a request it is logged."""
    events = request_events_var.get()
    if events is None:
        _events_logger.info(event, extra=fields)
    else:
        events["event"] = event
        events.update(fields)


_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "color_message",
}


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class ConsoleFormatter(logging.Formatter):
    """`time level [request id] logger: message key=value ...`, the extras sorted by key."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRIBUTES}
        if extras:
            line += " " + " ".join(f"{key}={value}" for key, value in sorted(extras.items()))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, then the record's extras.

    Every request writes a line, so the time's date-and-seconds part is made once per second."""

    _second: tuple[int, str] = (-1, "")  # one tuple, so a record from another thread sees a matching pair

    def format(self, record: logging.LogRecord) -> str:
        created = record.created
        second, second_text = self._second
        if int(created) != second:
            second = int(created)
            second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, second_text)
        entry: dict[str, Any] = {
            "time": f"{second_text}.{int((created - second) * 1000):03d}+00:00",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        entry.update({key: value for key, value in record.__dict__.items() if key not in _STANDARD_ATTRIBUTES})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str, log_format: str = "console") -> None:
    # No format here shows the caller's file and line, thread or process: skip collecting them on every
    # record (the logging HOWTO's "Optimization" section), which the per-request access line pays for.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else ConsoleFormatter())
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # The service writes its own access line (with route template, user and request id).
    logging.getLogger("uvicorn.access").disabled = True
