"""Content-addressed model store: blobs named by sha256, one JSON manifest per installed model.

Layout under `<data_dir>/models`:
  blobs/sha256-<hex>          the GGUF bytes
  manifests/<quoted name>.json  what the model is and which blob holds it
A manifest is written (atomically) only after its blob is complete and verified, so
nothing half-written is ever listed.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from filelock import FileLock

from jarvis.errors import InvalidInput, ModelNotFound

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
    url: str | None = None
    # False when the source published no digest: the sha256 is what we computed, not what we checked
    verified: bool = True
    # every file of a split GGUF, in order: {"file", "digest", "size"}; one entry for a single file
    files: list[dict] = field(default_factory=list)
    # the publisher's sampler settings (an Ollama model's params layer: temperature, top_k, …)
    parameters: dict = field(default_factory=dict)
    installed_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_dict(self) -> dict:
        return asdict(self)


def normalize_digest(digest: str) -> str:
    """`sha256-<hex>` for a digest in either spelling; raises InvalidInput for anything else."""
    match = DIGEST_RE.fullmatch(digest or "")  # `$` alone would let a trailing newline through
    if not match:
        raise InvalidInput(f"not a sha256 digest: {digest!r}")
    return f"sha256-{match.group(1)}"


def safe_file_name(name: str) -> str:
    """A file name from a registry, refused if it could leave its folder."""
    base = name.rsplit("/", 1)[-1]
    if not base or base in (".", "..") or "\\" in base or "\x00" in base or len(base) > 255:
        raise InvalidInput(f"unsafe file name: {name!r}")
    return base


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
        self.jobs = root / "jobs"
        self.locks = root / "locks"
        for folder in (self.blobs, self.manifests, self.jobs, self.locks):
            folder.mkdir(parents=True, exist_ok=True)

    def lock(self, name: str) -> FileLock:
        """A lock between processes sharing this store (`uvicorn --workers N`, replicas on
        one disk) for work on `name` (a file being written). The lock files stay: removing
        one while another process waits on it would let a third in. Not bound to a thread:
        acquired off the event loop, it may be released on it."""
        return FileLock(self.locks / f"{quote(name, safe='')}.lock", thread_local=False)

    def blob_path(self, digest: str) -> Path:
        return self.blobs / normalize_digest(digest)

    def _manifest_path(self, name: str) -> Path:
        return self.manifests / f"{quote(name, safe='')}.json"

    def get(self, name: str) -> Manifest | None:
        path = self._manifest_path(name)
        try:
            manifest = Manifest(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return manifest if all(self.blob_path(d).exists() for d in self.digests(manifest)) else None

    @staticmethod
    def digests(manifest: Manifest) -> builtins.list[str]:
        return [f["digest"] for f in manifest.files] or [manifest.digest]

    def list(self) -> builtins.list[Manifest]:
        """Installed models (a manifest whose blobs are all present), by name."""
        names = sorted(m.name for m in self._all_manifests())
        return [manifest for name in names if (manifest := self.get(name))]

    def parameters(self, name: str) -> dict:
        """The sampler settings `name` was published with (empty when none or not installed)."""
        manifest = self.get(name)
        return dict(manifest.parameters) if manifest else {}

    def model_path(self, name: str) -> Path | None:
        """The path llama.cpp opens: the blob, or for a split GGUF the first of its named links."""
        manifest = self.get(name)
        if manifest is None:
            return None
        if len(manifest.files) <= 1:
            return self.blob_path(manifest.digest)
        return self._link_split(manifest)

    def _link_split(self, manifest: Manifest) -> Path:
        # llama.cpp finds the other parts of a split GGUF by their names next to the first.
        folder = self.root / "links" / quote(manifest.name, safe="")
        folder.mkdir(parents=True, exist_ok=True)
        for entry in manifest.files:
            link = folder / safe_file_name(entry["file"])
            target = self.blob_path(entry["digest"])
            if not link.is_symlink() or link.resolve() != target.resolve():
                link.unlink(missing_ok=True)
                link.symlink_to(target)
        return folder / safe_file_name(manifest.files[0]["file"])

    def save(self, manifest: Manifest) -> None:
        manifest.digest = normalize_digest(manifest.digest)
        for entry in manifest.files:
            entry["digest"] = normalize_digest(entry["digest"])
            safe_file_name(entry["file"])
        write_atomic(self._manifest_path(manifest.name), json.dumps(manifest.to_dict(), indent=2).encode())

    def delete(self, name: str) -> builtins.list[str]:
        """Remove a model's manifest, then each of its blobs that no other manifest uses.

        Returns the digests removed. Raises ModelNotFound if no such manifest exists.
        """
        path = self._manifest_path(name)
        try:
            manifest = Manifest(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ModelNotFound(f"model {name!r} is not installed") from exc
        path.unlink()
        shutil.rmtree(self.root / "links" / quote(name, safe=""), ignore_errors=True)
        return self.prune(self.digests(manifest))

    def prune(self, digests: builtins.list[str]) -> builtins.list[str]:
        """Remove the blobs among `digests` that no manifest uses any more; returns those removed."""
        in_use = {d for other in self._all_manifests() for d in self.digests(other)}
        removed = []
        for digest in digests:
            if digest not in in_use:
                self.blob_path(digest).unlink(missing_ok=True)
                removed.append(digest)
        return removed

    def _all_manifests(self) -> builtins.list[Manifest]:
        manifests = []
        for path in self.manifests.glob("*.json"):
            try:
                manifests.append(Manifest(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError):
                continue
        return manifests
