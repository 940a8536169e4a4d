"""What each process deletes now and then: trashed tasks past their retention, and removals the change
feed no longer needs to report. Both work in small batches that skip rows in use, so several processes
may run them at once."""

from __future__ import annotations

import asyncio
import logging

from src.core.config import Settings
from src.core.database import Database
from src.services import sync_service, trash_service

logger = logging.getLogger(__name__)


async def purge_periodically(database: Database, settings: Settings) -> None:
    """Runs for the life of the process; a failed round (database away) is logged and retried later."""
    while True:
        await asyncio.sleep(settings.trash_purge_interval_seconds)
        try:
            async with database.connect() as connection:
                purged = await trash_service.purge_expired(connection=connection, retention=settings.trash_retention)
                forgotten = await sync_service.forget_old_removals(
                    connection=connection, retention=settings.sync_retention
                )
            if purged or forgotten:
                logger.info("expired trashed tasks purged", extra={"count": purged, "removals_forgotten": forgotten})
        except Exception as error:  # noqa: BLE001 - the next round tries again
            logger.warning("trash purge failed", extra={"error": type(error).__name__})
