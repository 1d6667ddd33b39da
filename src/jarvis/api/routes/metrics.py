"""`/metrics`: Prometheus text format. Who may read it is decided in api/security.py."""

from __future__ import annotations

from fastapi import APIRouter, Response

from jarvis.api.deps import ServicesDep
from jarvis.metrics import CONTENT_TYPE

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics of this replica (scrape each replica, not the load balancer)."""
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
