"""Content-addressed model store: blobs named by sha256, one JSON manifest per installed model.

Layout under `<data_dir>/models`:
  blobs/sha256-<hex>          the GGUF bytes
  manifests/<quoted name>.json  what the model is and which blob holds it
A manifest is written (atomically) only after its blob is complete and verified, so
nothing half-written is ever listed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from jarvis.errors import InvalidInput

DIGEST_RE = re.compile(r"^sha256[:-]([0-9a-f]{64})$")


@dataclass
class Manifest:
    name: str
    digest: str
    size: int
    source: str
    file: str
    repo: str | None = None
    quantization: str | None = None
    format: str = "gguf"
    family: str | None = None
    parameter_count: int | None = None
    context_length: int | None = None
    has_chat_template: bool = False
    installed_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def to_dict(self) -> dict:
        return asdict(self)


def normalize_digest(digest: str) -> str:
    """`sha256-<hex>` for a digest in either spelling; raises InvalidInput for anything else."""
    match = DIGEST_RE.match(digest or "")
    if not match:
        raise InvalidInput(f"not a sha256 digest: {digest!r}")
    return f"sha256-{match.group(1)}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary sibling, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.manifests = root / "manifests"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.manifests.mkdir(parents=True, exist_ok=True)

    def blob_path(self, digest: str) -> Path:
        return self.blobs / normalize_digest(digest)

    def _manifest_path(self, name: str) -> Path:
        return self.manifests / f"{quote(name, safe='')}.json"

    def get(self, name: str) -> Manifest | None:
        path = self._manifest_path(name)
        try:
            manifest = Manifest(**json.loads(path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None
        return manifest if self.blob_path(manifest.digest).exists() else None

    def list(self) -> list[Manifest]:
        names = []
        for path in sorted(self.manifests.glob("*.json")):
            try:
                names.append(json.loads(path.read_text())["name"])
            except (ValueError, KeyError, OSError):
                continue
        return [manifest for name in names if (manifest := self.get(name))]

    def model_path(self, name: str) -> Path | None:
        manifest = self.get(name)
        return self.blob_path(manifest.digest) if manifest else None

    def save(self, manifest: Manifest) -> None:
        manifest.digest = normalize_digest(manifest.digest)
        write_atomic(self._manifest_path(manifest.name), json.dumps(manifest.to_dict(), indent=2).encode())
