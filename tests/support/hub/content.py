"""What the hub serves: files as blobs (by sha256), Hugging Face repos, registry repos, signed
CDN grants, and the wire constants they are described with."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 1024 * 1024
LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub stores larger files in LFS whatever their name
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
OLLAMA_LAYER = "application/vnd.ollama.image.{}"
OCTET = "application/octet-stream"
# Fixed dates keep every answer byte-for-byte deterministic.
HUB_DATE = "2025-03-12T10:00:00.000Z"
HTTP_DATE = "Wed, 12 Mar 2025 10:00:00 GMT"
SECRET = b"jarvis-test-hub"


@dataclass(frozen=True)
class HubFile:
    """A file the hub serves: where a client starts (`url`) and what it must end up with."""

    name: str
    size: int
    sha256: str | None  # hex; None for plain files, which the hub never hashes
    url: str


@dataclass(frozen=True)
class HfRepo:
    repo_id: str
    sha: str  # the fake commit, as `X-Repo-Commit` and the model info's `sha` say
    files: dict[str, HubFile]


@dataclass(frozen=True)
class OllamaModel:
    name: str  # "library/gemma3"
    tag: str
    digest: str  # the manifest's own digest, as `Docker-Content-Digest` says
    manifest: dict
    config: HubFile
    layers: dict[str, HubFile]  # by the media type's last part: "model", "template", "params", …


@dataclass(eq=False)
class Blob:
    path: Path
    size: int
    sha256: str | None
    names: set[str]  # every key a fault or `bytes_sent` may use for it
    sent: int = 0


@dataclass
class HfEntry:
    name: str
    blob: Blob
    lfs: bool
    oid: str  # git object id: of the LFS pointer for LFS files, of the content otherwise
    pointer_size: int | None


@dataclass
class HfRepoState:
    repo_id: str
    files: dict[str, HfEntry]
    private: bool
    gated: str | bool
    sha: str


@dataclass
class OciRepo:
    name: str
    manifests: dict[str, bytes] = field(default_factory=dict)  # by tag and by digest
    blobs: dict[str, Blob] = field(default_factory=dict)  # by "sha256:<hex>"


@dataclass
class Grant:
    """One signed CDN URL the hub handed out."""

    sha256: str
    expires: int
    filename: str | None
    uses: int = 0


_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of a file, read in chunks; cached per (path, size, mtime) for the run."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 * CHUNK):
            digest.update(block)
    with _hash_lock:
        _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


def _git_blob_oid(path: Path, size: int) -> str:
    digest = hashlib.sha1(f"blob {size}\0".encode())
    with path.open("rb") as handle:
        while block := handle.read(4 * CHUNK):
            digest.update(block)
    return digest.hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file that the repository stores in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
