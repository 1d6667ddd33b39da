"""`/api/models…`: installed models, the active one, activation."""

from __future__ import annotations

from fastapi import APIRouter

from jarvis.api.deps import ServicesDep
from jarvis.models.store import Manifest
from jarvis.services import Services

router = APIRouter(prefix="/api/models", tags=["models"])


def model_dict(manifest: Manifest, services: Services) -> dict:
    loaded = services.engines.local.loaded
    return {
        "id": manifest.name,
        **manifest.to_dict(),
        "active": bool(loaded and loaded.name == manifest.name),
        "status": "installed",
    }


@router.get("")
async def list_models(services: ServicesDep) -> dict:
    return {"models": [model_dict(m, services) for m in services.store.list()]}


@router.get("/active")
async def active_model(services: ServicesDep) -> dict:
    local = services.engines.local
    loaded = local.loaded
    manifest = services.store.get(loaded.name) if loaded else None
    return {
        "model": model_dict(manifest, services) if manifest else None,
        "engine": local.name,
        "state": local.state,
        "context_length": loaded.n_ctx if loaded else None,
        "load_seconds": round(loaded.load_seconds, 3) if loaded else None,
    }


@router.post("/{model_id:path}/activate")
async def activate(model_id: str, services: ServicesDep) -> dict:
    loaded = await services.engines.local.load(model_id)
    return {"model": model_id, "status": "active", "load_seconds": round(loaded.load_seconds, 3)}
