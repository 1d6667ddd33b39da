"""Whether a model fits this machine's memory, decided before a download starts.

What a loaded GGUF takes, in bytes:

    weights (the file, memory-mapped and read whole on the first answer)
  + KV cache: 2 (K and V) x layers x KV heads x head size x context x 2 bytes (f16),
    which the catalog gives per model at the default context (JARVIS_N_CTX=4096) and which
    grows linearly with the context
  + RUNTIME_OVERHEAD: llama.cpp's compute buffers and the process itself.

RUNTIME_OVERHEAD was measured with llama-cpp-python on this project's machines: the process's
resident memory, minus the file, after loading at n_ctx 4096 and answering one 400-token chat
was 193 MiB for Gemma 3 270M and 198 MiB for Qwen2.5-Coder 0.5B (that includes the part of the
KV cache the chat touched); 256 MiB leaves room for a bigger vocabulary's logits.

A model the catalog does not know gets a quarter of its file size as its KV cache: the
catalog's models range from 5 % (Qwen2.5 7B, 4 KV heads) to 76 % (SmolLM2 1.7B, no grouped
attention) of their file size at 4096 tokens.
"""

from __future__ import annotations

import asyncio

import httpx
import psutil

from jarvis.config import Settings
from jarvis.errors import InvalidInput, JarvisError
from jarvis.models.catalog import CatalogEntry, load_catalog, lookup
from jarvis.models.pinning import file_client
from jarvis.models.plan import Plan
from jarvis.models.registries.url import check_public_url

MiB = 1 << 20
CATALOG_CONTEXT = 4096  # the context the catalog's KV cache sizes are given for
RUNTIME_OVERHEAD = 256 * MiB
PROBE_TIMEOUT = 10.0


class ModelTooLarge(InvalidInput):
    """The model would not fit in this machine's memory (or JARVIS_MEMORY_LIMIT_MB)."""

    code = "model_too_large"


def memory_needed(size: int, kv_cache: int | None = None, *, n_ctx: int = CATALOG_CONTEXT) -> int:
    """Bytes a model of `size` bytes takes loaded at `n_ctx` tokens of context (see the module
    docstring); `kv_cache` is its cache at CATALOG_CONTEXT tokens when known."""
    if kv_cache is None:
        kv_cache = size // 4
    return size + kv_cache * n_ctx // CATALOG_CONTEXT + RUNTIME_OVERHEAD


def memory_limit(settings: Settings) -> int | None:
    """The memory a model may take: JARVIS_MEMORY_LIMIT_MB, else this machine's RAM (None: no limit)."""
    if settings.memory_limit_mb is not None:
        return settings.memory_limit_mb * MiB or None  # 0 switches the check off
    return psutil.virtual_memory().total


def fits(entry: CatalogEntry, settings: Settings) -> bool | None:
    """Whether a catalog model fits (None where its size is unknown)."""
    if entry.size is None:
        return None
    limit = memory_limit(settings)
    return limit is None or memory_needed(entry.size, entry.kv_cache, n_ctx=settings.n_ctx) <= limit


async def check_memory(plan: Plan, settings: Settings) -> None:
    """Refuse a pull whose model would not fit, before any of its bytes is fetched. The size is
    the plan's (the registry's listing); a plain URL without one is asked with a HEAD, and
    one that still tells nothing is let through. Raises ModelTooLarge."""
    limit = memory_limit(settings)
    if limit is None:
        return
    size = plan.total_bytes
    if size is None and plan.source == "url" and len(plan.files) == 1:
        size = await asyncio.to_thread(_probe_size, plan.files[0].url, public_only=not settings.allow_insecure_urls)
    if size is None:
        return
    entry = _catalog_entry(plan)
    kv_cache = entry.kv_cache if entry else None
    needed = memory_needed(size, kv_cache, n_ctx=settings.n_ctx)
    if needed <= limit:
        return
    available = psutil.virtual_memory().available
    what = "JARVIS_MEMORY_LIMIT_MB allows" if settings.memory_limit_mb else "this machine has"
    raise ModelTooLarge(
        f"{plan.name} needs about {needed / 1e9:.2f} GB of memory ({size / 1e9:.2f} GB of weights, the rest "
        f"context cache at {settings.n_ctx} tokens and runtime) and {what} {limit / 1e9:.2f} GB: pick a smaller "
        "model or quantization (GET /api/models/available or `jarvis pull` lists them with what they need)",
        details={"needed_bytes": needed, "limit_bytes": limit, "available_bytes": available, "size_bytes": size},
    )


def _catalog_entry(plan: Plan) -> CatalogEntry | None:
    """The catalog's entry for a plan: by the key pulled, or by the repo (`hf.co/<catalog repo>`)."""
    entry = lookup(plan.model_key)
    if entry is None and plan.repo:
        entry = next((e for e in load_catalog().values() if e.repo == plan.repo), None)
    return entry


def _probe_size(url: str, *, public_only: bool) -> int | None:
    """Content-Length of a plain URL by a HEAD that follows redirects as the download would:
    to public addresses only, pinned (models/pinning.py), unless insecure URLs are allowed.
    None when it cannot tell; the download itself then reports what is wrong."""
    guard = (lambda request: check_public_url(str(request.url))) if public_only else None
    try:
        with file_client(PROBE_TIMEOUT, guard=guard) as client:
            response = client.head(url)
    except (httpx.HTTPError, JarvisError, OSError):
        return None
    length = response.headers.get("content-length", "")
    return int(length) if response.status_code == 200 and length.isdigit() else None
