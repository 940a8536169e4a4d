"""The one private piece of the standard library the service sets: `logging._srcfile = None`, which the
logging HOWTO documents to skip finding each record's caller. This fails loudly if a Python upgrade
changes what it does."""

from __future__ import annotations

import logging

from src.core.logging import configure_logging


def test_records_are_made_without_looking_up_their_caller() -> None:
    configure_logging("INFO", "json")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("tests.caller-lookup")
    logger.addHandler(Keep())
    try:
        logger.info("made")
    finally:
        logger.handlers.clear()

    assert hasattr(logging, "_srcfile")
    assert logging._srcfile is None
    assert (records[0].lineno, records[0].funcName) == (0, "(unknown function)")
