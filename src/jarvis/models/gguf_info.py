"""Read a GGUF file's header: metadata keys and tensor shapes, with every count and length bounded.

Written by hand rather than with `gguf.GGUFReader`: that reader builds numpy views of every
array field, which takes over 30 s for a 262k-entry vocabulary on two cores; walking the
header with `struct` over an mmap takes a fraction of a second, and it lets us refuse
malformed headers before llama.cpp ever opens the file.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from jarvis.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"
MAX_STRING = 1 << 24  # 16 MiB: a chat template is a few KB, a token a few bytes
MAX_ITEMS = 1 << 24
MAX_DIMS = 8

# GGUF value types -> struct format of one item (strings and arrays are handled apart)
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9

# llama.cpp's general.file_type values for the quantizations people ask for by name.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
}


class _Cursor:
    def __init__(self, buf) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, fmt: str):
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

    def value(self, kind: int):
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
    """Metadata (arrays as their length) and tensors `(name, dims, type)`.

    Raises ModelLoadError for anything that is not a well-formed GGUF header.
    """
    try:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            cur = _Cursor(buf)
            if bytes(buf[:4]) != GGUF_MAGIC:
                raise ValueError("bad magic (not a GGUF file)")
            cur.pos = 4
            version = cur.take("I")
            if version not in (2, 3):
                raise ValueError(f"unsupported GGUF version {version}")
            n_tensors, n_kv = cur.take("Q"), cur.take("Q")
            if n_tensors > MAX_ITEMS or n_kv > MAX_ITEMS:
                raise ValueError("implausible tensor or key count")
            meta = {}
            for _ in range(n_kv):
                key = cur.string()
                meta[key] = cur.value(cur.take("I"))
            tensors = []
            for _ in range(n_tensors):
                name = cur.string()
                n_dims = cur.take("I")
                if n_dims > MAX_DIMS:
                    raise ValueError(f"tensor {name!r} has {n_dims} dimensions")
                dims = [cur.take("Q") for _ in range(n_dims)]
                tensor_type = cur.take("I")
                cur.take("Q")  # offset into the data section
                tensors.append((name, dims, tensor_type))
            return meta, tensors
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path.name} is not a valid GGUF file: {exc}") from exc


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
        "quantization": FILE_TYPES.get(meta.get("general.file_type")),
        "has_chat_template": "tokenizer.chat_template" in meta,
    }
