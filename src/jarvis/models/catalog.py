"""Catalog shortcuts (`mistral`, `qwen`, …), kept in `catalog.json` beside this file."""

from __future__ import annotations

import json
from dataclasses import dataclass
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


@cache
def load_catalog(path: Path = CATALOG_FILE) -> dict[str, CatalogEntry]:
    raw = json.loads(path.read_text())
    return {
        key.lower(): CatalogEntry(key=key, **{k: v for k, v in entry.items() if k in ("source", "description", "repo", "tag")})
        for key, entry in raw.items()
        if not key.startswith("_")
    }


def lookup(key: str) -> CatalogEntry | None:
    return load_catalog().get(key.strip().lower())
