"""Write a copy of a real GGUF with one more metadata key (e.g. a chat template), keeping
its tensors: offsets are relative to the data section, which is moved, not changed."""

from __future__ import annotations

import mmap
import shutil
import struct
from pathlib import Path

from jarvis.models.gguf_info import _Cursor


def with_string_key(source: Path, target: Path, key: str, value: str) -> Path:
    with source.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        cur = _Cursor(buf)
        cur.pos = 8
        n_tensors, n_kv = cur.take("Q"), cur.take("Q")
        kv_start = cur.pos
        alignment = 32
        for _ in range(n_kv):
            name = cur.string()
            value_at = cur.pos
            found = cur.value(cur.take("I"))
            if name == "general.alignment":
                alignment = found
            del value_at
        kv_end = cur.pos
        for _ in range(n_tensors):
            cur.string()
            dims = cur.take("I")
            for _ in range(dims):
                cur.take("Q")
            cur.take("I")
            cur.take("Q")
        tensors_end = cur.pos
        data_start = -(-tensors_end // alignment) * alignment
        raw_key, raw_value = key.encode(), value.encode()
        extra = (
            struct.pack("<Q", len(raw_key))
            + raw_key
            + struct.pack("<I", 8)
            + struct.pack("<Q", len(raw_value))
            + raw_value
        )
        header = bytes(buf[:8]) + struct.pack("<QQ", n_tensors, n_kv + 1) + bytes(buf[kv_start:kv_end]) + extra
        header += bytes(buf[kv_end:tensors_end])
        header += b"\0" * (-len(header) % alignment)
        with target.open("wb") as out:
            out.write(header)
            handle.seek(data_start)
            shutil.copyfileobj(handle, out, 16 << 20)
    return target
