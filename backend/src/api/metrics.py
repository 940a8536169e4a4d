"""GET /metrics for Prometheus; left out of the public OpenAPI document."""

from __future__ import annotations

from fastapi import APIRouter, Response

from src.api.access import PublicRoute
from src.core.metrics import METRICS_MEDIA_TYPE, render_metrics

router = APIRouter(include_in_schema=False, route_class=PublicRoute)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(render_metrics(), media_type=METRICS_MEDIA_TYPE)
