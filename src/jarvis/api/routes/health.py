"""`/`, `/api/health`, `/health`."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from jarvis import __version__
from jarvis.api.deps import ServicesDep
from jarvis.services import Services
from jarvis.web.routes import console_page, wants_html

router = APIRouter(tags=["health"])


@router.get("/", response_model=None)
async def root(request: Request) -> Response | dict:
    """The web console for a browser (`Accept: text/html`), else the service's name and links."""
    if wants_html(request):
        return console_page(request)
    return {
        "name": "JARVIS Core",
        "version": __version__,
        "links": {"docs": "/docs", "redoc": "/redoc", "openapi": "/openapi.json", "health": "/api/health", "ws": "/ws"},
    }


async def health_report(services: Services) -> dict:
    local = services.engines.local
    database_ok = await services.db.ping()
    events_ok = services.bus.status()["connected"]
    return {
        "status": "ok" if database_ok and events_ok and local.state != "error" else "degraded",
        "version": __version__,
        "uptime_seconds": round(time.time() - services.started_at, 1),
        "active_model": local.loaded.name if local.loaded else None,
        "engine": {"name": local.name, "state": local.state, "error": local.last_error},
        # the loaded model's slots: total, busy, queued, tokens_per_slot, cached_tokens, cache_use
        "slots": local.slots(),
        "remote_engines": sorted(services.engines.remotes),
        # the servers behind them: name, kind, up, outstanding (answers in flight), models (filter)
        "upstreams": services.engines.upstreams(),
        "database": {"ok": database_ok, "backend": services.db.url.get_backend_name()},
        # how events reach the other replicas: postgres (LISTEN/NOTIFY), redis, or local (SQLite)
        "events": services.bus.status(),
    }


def _public(request: Request) -> bool:
    """Without a valid key (when keys are set) health says only that the service is up."""
    return request.scope.get("state", {}).get("authenticated") is False


@router.get("/api/health")
async def health(request: Request, services: ServicesDep) -> dict:
    if _public(request):
        return {"status": "ok", "version": __version__}
    return await health_report(services)


@router.get("/health", include_in_schema=False)
async def health_alias(request: Request, services: ServicesDep) -> dict:
    return await health(request, services)
