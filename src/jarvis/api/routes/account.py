"""`/api/me` (who the key belongs to, whether they may manage the server) and
`/api/models/disk` (free space for models): what the web console asks before it draws a view."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from jarvis.api.deps import AdminDep, ServicesDep, UserDep
from jarvis.models.disk import disk_report

router = APIRouter(tags=["account"])


@router.get("/api/me")
async def me(request: Request, user: UserDep, admin: AdminDep) -> dict:
    """`{user, admin, keys}`: `keys` says whether the server wants an API key at all (without
    keys everyone is the one local admin `default`)."""
    keys = "authenticated" in request.scope.get("state", {})
    return {"user": user, "admin": admin, "keys": keys}


@router.get("/api/models/disk", tags=["models"])
async def disk(services: ServicesDep) -> dict:
    """`{path, free_bytes, total_bytes, models_bytes, reserve_bytes}` of the model store."""
    return await asyncio.to_thread(disk_report, services.store, services.settings)
