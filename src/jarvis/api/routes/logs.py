"""`/api/logs`: stored log records (filters, paging) and statistics over a window. Admins only:
records name every user's requests."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from jarvis.api.deps import AdminOnly, ServicesDep
from jarvis.logs.query import MAX_LIMIT, MAX_TEXT, LogFilter

router = APIRouter(prefix="/api/logs", tags=["logs"], dependencies=[AdminOnly])

MAX_WINDOW = 30 * 24 * 3600


@router.get("")
async def list_logs(
    services: ServicesDep,
    level: Annotated[
        str | None, Query(max_length=16, description="minimum level: DEBUG, INFO, WARNING, ERROR, CRITICAL")
    ] = None,
    source: Annotated[str | None, Query(max_length=200, description="logger name prefix, e.g. `jarvis.models`")] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; without a zone it is UTC")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; without a zone it is UTC")] = None,
    q: Annotated[str | None, Query(max_length=MAX_TEXT, description="text in the message, any case")] = None,
    request_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    before_id: Annotated[int | None, Query(ge=1, description="continue after a page: its `next_before_id`")] = None,
) -> dict:
    """Stored records, newest first: `{records, total, limit, offset, next_before_id}`."""
    where = LogFilter.parse(level=level, source=source, since=since, until=until, text=q, request_id=request_id)
    assert services.logs is not None  # the server always starts its log service
    return await services.logs.query(where, limit=limit, offset=offset, before_id=before_id)


@router.get("/stats")
async def log_stats(
    services: ServicesDep,
    window: Annotated[int, Query(ge=60, le=MAX_WINDOW, description="seconds back from now")] = 3600,
) -> dict:
    """Counts per level and source, error rate (ERROR and CRITICAL of all), access status
    classes, and records dropped by capture since start."""
    assert services.logs is not None
    return await services.logs.stats(window)
