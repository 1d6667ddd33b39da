"""`/api/models…`: installed models, catalog, variants, downloads with SSE progress, activation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sse_starlette import EventSourceResponse

from jarvis.api.deps import AdminOnly, ServicesDep
from jarvis.api.schemas import CancelRequest, DownloadRequest, ModelKeyRequest
from jarvis.errors import Conflict, ModelNotFound
from jarvis.models.capabilities import capabilities, kind
from jarvis.models.catalog import load_catalog
from jarvis.models.fit import fits
from jarvis.models.installed import find_installed
from jarvis.models.store import Manifest
from jarvis.services import Services

router = APIRouter(prefix="/api/models", tags=["models"])


def model_dict(manifest: Manifest, services: Services) -> dict:
    """An installed model as the API shows it (reads the file's header once: call off the loop)."""
    loaded = services.engines.local.loaded
    return {
        "id": manifest.name,
        **manifest.to_dict(),
        "kind": kind(manifest),
        "capabilities": capabilities(services.store, manifest),
        "active": bool(loaded and loaded.name == manifest.name),
        "status": "installed",
    }


@router.get("")
async def list_models(services: ServicesDep) -> dict:
    """Installed models; `kind` is `base` for a model without a chat template (it completes
    text but was not trained to chat), else `instruct`."""
    return {"models": await asyncio.to_thread(lambda: [model_dict(m, services) for m in services.store.list()])}


@router.get("/available")
async def available_models(services: ServicesDep) -> dict:
    """Catalog shortcuts (with their size, the memory they need and whether that fits here) and
    installed models, each with its download status."""
    installed = services.store.list()
    entries = []
    for _key, entry in load_catalog().items():
        names = [m.name for m in installed if m.name == entry.key or m.name.startswith(f"{entry.key}:")]
        job = services.downloads.find(entry.key)
        item = {
            "id": entry.key,
            "model_key": entry.key,
            "source": entry.source,
            "repo": entry.repo,
            "description": entry.description,
            "installed": names,
            **entry.info(),
            "fits": fits(entry, services.settings),
        }
        entries.append(_with_status(item, bool(names), job))
    catalogued = {n for e in entries for n in e["installed"]}
    for manifest in installed:
        if manifest.name not in catalogued:
            item = {
                "id": manifest.name,
                "model_key": manifest.name,
                "source": manifest.source,
                "repo": manifest.repo,
                "description": None,
                "installed": [manifest.name],
            }
            entries.append(_with_status(item, True, None))
    for job in reversed(services.downloads.all_jobs()):  # newest first: a retry hides its failure
        if job.status != "completed" and not any(
            job.model_key == e["model_key"] or job.name in e["installed"] for e in entries
        ):
            item = {
                "id": job.name,
                "model_key": job.model_key,
                "source": job.plan.source,
                "repo": job.plan.repo,
                "description": None,
                "installed": [],
            }
            entries.append(_with_status(item, False, job))
    return {"models": entries}


def _with_status(item: dict, installed: bool, job: Any) -> dict:
    if job is not None and job.active:
        snapshot = job.snapshot()
        return {**item, "status": "downloading", "percent": snapshot["percent"], "download": snapshot}
    if installed:
        return {**item, "status": "installed", "percent": 100.0}
    if job is not None and job.status == "error":
        return {**item, "status": "error", "error": job.error}
    return {**item, "status": "not_downloaded"}


@router.get("/active")
async def active_model(services: ServicesDep) -> dict:
    local = services.engines.local
    loaded = local.loaded
    manifest = services.store.get(loaded.name) if loaded else None
    return {
        "model": await asyncio.to_thread(model_dict, manifest, services) if manifest else None,
        "engine": local.name,
        "state": local.state,
        "context_length": loaded.n_ctx if loaded else None,
        "load_seconds": round(loaded.load_seconds, 3) if loaded else None,
    }


@router.get("/variants")
async def variants(
    services: ServicesDep,
    model_key: Annotated[str, Query(min_length=1, max_length=500)],
    quantization: Annotated[str | None, Query(max_length=32)] = None,
) -> dict:
    """The quantizations that really exist in the repo, the recommended (Q4_K_M) first."""
    found = await services.downloads.variants(model_key)
    if quantization:
        wanted = [v for v in found if (v["quantization"] or "").upper() == quantization.upper()]
        if not wanted:
            available = [v["quantization"] for v in found]
            raise ModelNotFound(
                f"{model_key} has no {quantization} variant; available: {', '.join(map(str, available))}",
                details={"available": available},
            )
        found = wanted
    return {"model_key": model_key, "variants": found}


@router.post("/download", status_code=202, dependencies=[AdminOnly])
async def download(body: DownloadRequest, services: ServicesDep) -> dict:
    job = await services.downloads.submit(body.model_key, body.quantization)
    return job.snapshot()


@router.get("/download/progress")
async def download_progress(
    services: ServicesDep, model: Annotated[str | None, Query(max_length=500)] = None
) -> EventSourceResponse:
    """SSE: `progress` events (current state of every job first), `error` events."""

    def wanted(data: dict) -> bool:
        return model is None or model in (data.get("model"), data.get("name"), data.get("job_id"))

    async def events() -> AsyncIterator[dict]:
        async with services.bus.subscribe() as queue:
            for snapshot in services.downloads.snapshots():
                if wanted(snapshot):
                    yield {"event": "progress", "data": json.dumps(snapshot)}
            while True:
                event = await queue.get()
                if not wanted(event.data):
                    continue
                if event.type == "download.progress":
                    yield {"event": "progress", "data": json.dumps(event.data)}
                elif event.type == "download.error":
                    yield {"event": "error", "data": json.dumps(event.data)}

    return EventSourceResponse(events(), ping=15)


@router.post("/cancel", dependencies=[AdminOnly])
async def cancel(body: CancelRequest, services: ServicesDep) -> dict:
    job = await services.downloads.cancel(body.model_key, keep_partial=body.keep_partial)
    return job.snapshot()


async def _delete(services: Services, key: str) -> dict:
    if services.downloads.active_for(key):
        raise Conflict(f"{key!r} is still downloading; cancel it first")
    manifest = find_installed(services.store, key)
    await services.engines.local.forget(manifest.name)
    removed = await asyncio.to_thread(services.store.delete, manifest.name)
    services.downloads.forget(manifest.name)  # its finished jobs would tell late listeners "completed"
    return {"model": manifest.name, "deleted": True, "removed_blobs": removed}


@router.delete("/delete", dependencies=[AdminOnly])
async def delete_by_key(body: ModelKeyRequest, services: ServicesDep) -> dict:
    return await _delete(services, body.model_key)


@router.delete("/{model_id:path}", dependencies=[AdminOnly])
async def delete_model(model_id: str, services: ServicesDep) -> dict:
    return await _delete(services, model_id)


@router.post("/{model_id:path}/activate")
async def activate(model_id: str, services: ServicesDep) -> dict:
    if services.downloads.active_for(model_id):
        raise Conflict(f"{model_id!r} is still downloading")
    manifest = find_installed(services.store, model_id)
    local = services.engines.local
    already = local.loaded is not None and local.loaded.name == manifest.name
    loaded = await local.load(manifest.name)  # a real load publishes model.loaded itself
    if already:  # still tell listeners which model is active
        services.bus.publish("model.loaded", {"model": manifest.name, "load_seconds": 0.0, "already_loaded": True})
    return {"model": manifest.name, "status": "active", "load_seconds": round(loaded.load_seconds, 3)}
