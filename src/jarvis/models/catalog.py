"""Catalog shortcuts (`mistral`, `qwen`, small models for CPUs, …) with what each takes on disk and in
memory, kept in `catalog.json` beside this file."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

CATALOG_FILE = Path(__file__).with_name("catalog.json")


@dataclass(frozen=True)
class CatalogEntry:
    key: str
    source: str  # hf | ollama | bundled
    description: str
    repo: str | None = None
    tag: str | None = None
    # What the default quantization takes (see `_sizes` in catalog.json and models/fit.py):
    params: str | None = None  # "1.5B"
    quantization: str | None = None  # the variant the sizes are for (Q4_K_M)
    instruct: bool | None = None  # instruction-tuned (a chat model) or a base model
    size: int | None = None  # bytes on disk
    kv_cache: int | None = None  # bytes of f16 KV cache at 4096 tokens of context
    memory: int | None = None  # bytes of RAM loaded: size + kv_cache + runtime overhead

    def info(self) -> dict:
        """The sizes and kind, for listings."""
        return {
            "params": self.params,
            "quantization": self.quantization,
            "instruct": self.instruct,
            "size": self.size,
            "memory": self.memory,
        }


_FIELDS = {f.name for f in fields(CatalogEntry)} - {"key"}


@cache
def load_catalog(path: Path = CATALOG_FILE) -> dict[str, CatalogEntry]:
    raw = json.loads(path.read_text())
    return {
        key.lower(): CatalogEntry(key=key, **{k: v for k, v in entry.items() if k in _FIELDS})
        for key, entry in raw.items()
        if not key.startswith("_")
    }


def lookup(key: str) -> CatalogEntry | None:
    return load_catalog().get(key.strip().lower())
