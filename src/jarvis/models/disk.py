"""How much disk the model store has left, for the console and clients that pull models."""

from __future__ import annotations

import shutil

from jarvis.config import Settings
from jarvis.models.store import ModelStore


def disk_report(store: ModelStore, settings: Settings) -> dict:
    """Free and total bytes of the store's file system, the bytes its blobs take, and the reserve
    a download must leave free (`JARVIS_DISK_RESERVE_MB`). Raises OSError if the store is gone."""
    usage = shutil.disk_usage(store.blobs)
    blobs = sum(
        p.stat().st_size
        for p in store.blobs.iterdir()
        if p.name.startswith("sha256-") and "." not in p.name and p.is_file()
    )
    return {
        "path": str(store.root),
        "free_bytes": usage.free,
        "total_bytes": usage.total,
        "models_bytes": blobs,
        "reserve_bytes": settings.disk_reserve_bytes,
    }
