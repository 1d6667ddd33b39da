"""Read and check a GGUF file's header before llama.cpp ever opens it.

Metadata and tensor descriptions are walked with `struct` over an mmap, every count,
length, dimension and offset bounded: a crafted header is refused with ModelLoadError,
never a crash, a hang or a huge allocation. The tables of tensor types and file types
are the `gguf` package's (models/ggml_types.py); its `GGUFReader` is not used to parse, because it builds
numpy views of every array field (over 30 s for a 262k-entry vocabulary on two cores)
and trusts the counts it reads.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

from jarvis.errors import ModelLoadError
from jarvis.models.ggml_types import FILE_TYPES, TENSOR_TYPE_SIZES

GGUF_MAGIC = b"GGUF"
MAX_STRING = 1 << 24  # 16 MiB: a chat template is a few KB, a token a few bytes
MAX_ITEMS = 1 << 24
MAX_TENSORS = 1 << 20
MAX_DIMS = 4  # ggml tensors have at most four dimensions
MAX_ALIGNMENT = 1 << 20

# GGUF value types -> struct format of one item (strings and arrays are handled apart)
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class _Cursor:
    def __init__(self, buf: bytes | memoryview | mmap.mmap) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise ValueError("header runs past the end of the file")
        (value,) = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        length = self.take("Q")
        if length > MAX_STRING or self.pos + length > len(self.buf):
            raise ValueError(f"string length {length} out of bounds")
        raw = self.buf[self.pos : self.pos + length]
        self.pos += length
        return bytes(raw).decode("utf-8", "replace")

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.take(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, count = self.take("I"), self.take("Q")
            if count > MAX_ITEMS:
                raise ValueError(f"array of {count} items")
            if item_kind in _SCALARS:
                size = struct.calcsize(_SCALARS[item_kind]) * count
                if self.pos + size > len(self.buf):
                    raise ValueError("array runs past the end of the file")
                self.pos += size  # arrays (vocabularies, scores) are skipped, not decoded
                return count
            if item_kind == _STRING:
                for _ in range(count):
                    self.string()
                return count
            raise ValueError(f"unsupported array item type {item_kind}")
        raise ValueError(f"unknown value type {kind}")


def read_header(path: Path) -> tuple[dict, list[tuple[str, list[int], int]]]:
    """Metadata (arrays as their length) and tensors `(name, dims, type)`, after checking that
    every tensor lies inside the file at an aligned offset with a size its type explains.

    Raises ModelLoadError for anything that is not a well-formed GGUF file.
    """
    try:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(buf)
    except (OSError, ValueError, OverflowError, struct.error) as exc:
        raise ModelLoadError(f"{path.name} is not a valid GGUF file: {exc}") from exc


def _parse(buf: bytes | memoryview | mmap.mmap) -> tuple[dict, list[tuple[str, list[int], int]]]:
    cur = _Cursor(buf)
    if bytes(buf[:4]) != GGUF_MAGIC:
        raise ValueError("bad magic (not a GGUF file)")
    cur.pos = 4
    version = cur.take("I")
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    n_tensors, n_kv = cur.take("Q"), cur.take("Q")
    if n_tensors > MAX_TENSORS or n_kv > MAX_ITEMS:
        raise ValueError("implausible tensor or key count")
    meta = {}
    for _ in range(n_kv):
        key = cur.string()
        meta[key] = cur.value(cur.take("I"))
    alignment = meta.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment > MAX_ALIGNMENT or alignment & (alignment - 1):
        raise ValueError(f"alignment {alignment!r} is not a power of two up to {MAX_ALIGNMENT}")
    tensors, spans, names = [], [], set()
    for _ in range(n_tensors):
        name = cur.string()
        if name in names:
            raise ValueError(f"tensor {name!r} appears twice")
        names.add(name)
        n_dims = cur.take("I")
        if not 1 <= n_dims <= MAX_DIMS:
            raise ValueError(f"tensor {name!r} has {n_dims} dimensions")
        dims = [cur.take("Q") for _ in range(n_dims)]
        kind, offset = cur.take("I"), cur.take("Q")
        if kind not in TENSOR_TYPE_SIZES:
            raise ValueError(f"tensor {name!r} has unknown type {kind}")
        elements = 1
        for dim in dims:
            if not 1 <= dim <= 1 << 40:
                raise ValueError(f"tensor {name!r} has dimension {dim}")
            elements *= dim
        block, block_bytes = TENSOR_TYPE_SIZES[kind]
        if elements > 1 << 45 or dims[0] % block:
            raise ValueError(f"tensor {name!r} has a shape its type cannot hold")
        if offset % alignment:
            raise ValueError(f"tensor {name!r} is not aligned")
        tensors.append((name, dims, kind))
        spans.append((offset, elements // block * block_bytes, name))
    data_start = -(-cur.pos // alignment) * alignment
    data_size = len(buf) - data_start
    for offset, size, name in spans:
        if offset + size > data_size:
            raise ValueError(f"tensor {name!r} lies outside the file (truncated download?)")
    return meta, tensors


def read_metadata(path: Path) -> dict:
    """The facts a manifest records about a GGUF file. Raises ModelLoadError if it is not one."""
    meta, tensors = read_header(path)
    arch = meta.get("general.architecture")
    parameters = 0
    for _name, dims, _type in tensors:
        count = 1
        for dim in dims:
            count *= dim
        parameters += count
    return {
        "architecture": arch,
        "name": meta.get("general.name"),
        "parameter_count": parameters,
        "context_length": meta.get(f"{arch}.context_length") if arch else None,
        "quantization": FILE_TYPES.get(meta.get("general.file_type", -1)),
        "has_chat_template": "tokenizer.chat_template" in meta,
        # the author's sampler settings, where the file carries them (llama.cpp's general.sampling.*)
        "sampling": {key: value for key, value in meta.items() if key.startswith("general.sampling.")},
        "kv_bytes_per_token": kv_bytes_per_token(meta),
    }


def kv_bytes_per_token(meta: dict) -> int | None:
    """Bytes one token of context takes in llama.cpp's KV cache (f16 keys and values, every
    layer full size), from a GGUF's attention shape; None where the file does not say."""
    arch = meta.get("general.architecture")
    layers = meta.get(f"{arch}.block_count")
    heads = meta.get(f"{arch}.attention.head_count")
    embedding = meta.get(f"{arch}.embedding_length")
    if not (isinstance(layers, int) and isinstance(heads, int) and isinstance(embedding, int)):
        return None
    if min(layers, heads, embedding) <= 0:
        return None
    kv_heads = meta.get(f"{arch}.attention.head_count_kv", heads)
    if isinstance(kv_heads, list):  # per layer (some hybrid models): their mean
        kv_heads = sum(kv_heads) / max(len(kv_heads), 1)
    key = meta.get(f"{arch}.attention.key_length") or embedding // heads
    value = meta.get(f"{arch}.attention.value_length") or embedding // heads
    return int(layers * kv_heads * (key + value) * 2)
