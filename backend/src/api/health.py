"""Liveness and readiness probes for process managers and load balancers."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from src.api.access import PublicRoute
from src.api.problems import problem_responses, service_unavailable
from src.core.database import current_revision

router = APIRouter(tags=["health"], route_class=PublicRoute)
logger = logging.getLogger(__name__)

READINESS_TIMEOUT_SECONDS = 1.5


class HealthStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str


@router.get("/healthz", operation_id="checkLiveness", response_model=HealthStatus, responses=problem_responses(500))
async def healthz() -> HealthStatus:
    """Answers 200 while the process runs; it never touches the database."""
    return HealthStatus(status="ok")


@router.get(
    "/readyz", operation_id="checkReadiness", response_model=HealthStatus, responses=problem_responses(500, 503)
)
async def readyz(request: Request) -> HealthStatus | Response:
    """Answers 200 when the database answers and its schema is at the migration head, else 503."""
    expected = request.app.state.schema_head
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            revision = await current_revision(request.app.state.database.probe_engine)
    except Exception as error:  # noqa: BLE001 - any failure to reach the database means "not ready"
        logger.warning("readiness check failed", extra={"error": type(error).__name__})
        return service_unavailable("The database is not answering.")
    if revision != expected:
        return service_unavailable(f"The database schema is at {revision}, not {expected}: run the migrations.")
    return HealthStatus(status="ready")
