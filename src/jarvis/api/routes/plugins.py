"""`/api/plugins`: list, enable, disable (the state survives restarts; changing it is for admins:
it changes the server for every user)."""

from __future__ import annotations

from fastapi import APIRouter

from jarvis.api.deps import AdminOnly, ServicesDep

router = APIRouter(prefix="/api/plugins", tags=["plugins"])


@router.get("")
async def list_plugins(services: ServicesDep) -> dict:
    return {"plugins": services.plugins.list()}


@router.get("/{plugin_id}")
async def get_plugin(plugin_id: str, services: ServicesDep) -> dict:
    return services.plugins.get(plugin_id).to_dict()


@router.post("/{plugin_id}/enable", dependencies=[AdminOnly])
async def enable(plugin_id: str, services: ServicesDep) -> dict:
    """Enable a plugin; enabling one that is enabled changes nothing (`changed: false`)."""
    record, changed = await services.plugins.set_enabled(plugin_id, True)
    return {**record.to_dict(), "changed": changed}


@router.post("/{plugin_id}/disable", dependencies=[AdminOnly])
async def disable(plugin_id: str, services: ServicesDep) -> dict:
    record, changed = await services.plugins.set_enabled(plugin_id, False)
    return {**record.to_dict(), "changed": changed}
