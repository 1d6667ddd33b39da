"""Turning fetched blobs into an installed model: its manifest, from the files' GGUF headers."""

from __future__ import annotations

import logging

from jarvis.errors import ModelLoadError
from jarvis.models.gguf_info import read_metadata
from jarvis.models.plan import Plan
from jarvis.models.store import Manifest, ModelStore, normalize_digest

log = logging.getLogger(__name__)


def install(store: ModelStore, plan: Plan, digests: list[str]) -> Manifest:
    """Write the manifest of `plan`, whose files are the blobs `digests` (in the plan's order);
    an update replaces the installed version and removes the files only it used.

    Raises ModelLoadError for a file that is not a valid GGUF (its blob is removed, unless
    another model uses it)."""
    paths = [store.blob_path(d) for d in digests]
    try:
        metas = [read_metadata(path) for path in paths]
    except ModelLoadError:
        for digest, path in zip(digests, paths, strict=False):
            if not any(digest in store.digests(m) for m in store.list()):
                path.unlink(missing_ok=True)
        raise
    meta = metas[0]
    manifest = Manifest(
        name=plan.name,
        digest=digests[0],
        size=sum(path.stat().st_size for path in paths),
        source=plan.source,
        repo=plan.repo,
        file=plan.files[0].file,
        quantization=plan.quantization or meta["quantization"],
        family=meta["architecture"],
        parameter_count=sum(m["parameter_count"] for m in metas),
        context_length=meta["context_length"],
        has_chat_template=meta["has_chat_template"],
        url=plan.files[0].url,
        verified=all(f.digest for f in plan.files),
        files=[
            {"file": f.file, "digest": d, "size": p.stat().st_size}
            for f, d, p in zip(plan.files, digests, paths, strict=False)
        ],
        parameters=plan.parameters,
    )
    replaced = store.get(plan.name)
    store.save(manifest)
    if replaced is not None:  # an update: the files the old version alone used go
        store.prune(store.digests(replaced))
        log.info("updated %s: %s replaces %s", manifest.name, manifest.digest, replaced.digest)
    log.info("installed %s (%s)", manifest.name, "verified" if manifest.verified else "unverified: no published digest")
    return manifest


def is_update(installed: Manifest, plan: Plan) -> bool:
    """Whether the registry now publishes other files under an installed model's name (as
    `ollama pull` of a newer tag, or Ollama's gemma3:270m over the bundled one of that name).
    Files without a published digest cannot be compared: those count as the same."""
    published = [normalize_digest(f.digest) for f in plan.files if f.digest]
    if not published or len(published) != len(plan.files):
        return False
    return set(published) != set(ModelStore.digests(installed))
