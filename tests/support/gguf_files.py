"""Small GGUF files for download tests: a valid header (what the store reads) and a payload
of the size a test needs. llama.cpp cannot run them; the real bundled model covers that."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path


def _string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf_bytes(
    *, arch: str = "llama", file_type: int = 15, name: str = "tiny", payload: int = 0, seed: int = 1
) -> bytes:
    kv = [
        (_string("general.architecture") + struct.pack("<I", 8) + _string(arch)),
        (_string("general.name") + struct.pack("<I", 8) + _string(name)),
        (_string("general.file_type") + struct.pack("<I", 4) + struct.pack("<I", file_type)),
        (_string(f"{arch}.context_length") + struct.pack("<I", 4) + struct.pack("<I", 2048)),
    ]
    tensor = (
        _string("token_embd.weight")
        + struct.pack("<I", 2)
        + struct.pack("<QQ", 64, 32)
        + struct.pack("<I", 0)
        + struct.pack("<Q", 0)
    )
    header = b"GGUF" + struct.pack("<I", 3) + struct.pack("<QQ", 1, len(kv)) + b"".join(kv) + tensor
    header += b"\0" * (-len(header) % 32)
    length = 64 * 32 * 4 + payload
    block = hashlib.sha256(f"{name}/{seed}".encode()).digest() * 2048  # 64 KiB, different per seed
    data = block * (length // len(block) + 1)
    return header + data[:length]


def write_gguf(path: Path, *, payload: int = 0, **kwargs) -> Path:
    path.write_bytes(gguf_bytes(payload=payload, **kwargs))
    return path
