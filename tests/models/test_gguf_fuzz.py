"""The GGUF header check refuses every malformed header with ModelLoadError: mutated,
truncated or inflated headers never crash it, never hang it, never make it allocate wildly."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jarvis.errors import ModelLoadError
from jarvis.models.gguf_info import read_header, read_metadata


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def sample_gguf() -> bytes:
    """A small but complete GGUF: scalars, a string, a string array, a float array, two tensors."""
    kv = [
        _s("general.architecture") + struct.pack("<I", 8) + _s("llama"),
        _s("general.alignment") + struct.pack("<I", 4) + struct.pack("<I", 32),
        _s("llama.context_length") + struct.pack("<I", 4) + struct.pack("<I", 4096),
        _s("tokenizer.ggml.tokens") + struct.pack("<II", 9, 8) + struct.pack("<Q", 3) + _s("a") + _s("bb") + _s("ccc"),
        _s("tokenizer.ggml.scores")
        + struct.pack("<II", 9, 6)
        + struct.pack("<Q", 3)
        + struct.pack("<3f", 0.1, 0.2, 0.3),
        _s("tokenizer.chat_template") + struct.pack("<I", 8) + _s("{{ messages }}"),
    ]
    tensors = [
        _s("a.weight") + struct.pack("<I", 2) + struct.pack("<QQ", 32, 4) + struct.pack("<I", 0) + struct.pack("<Q", 0),
        _s("b.weight") + struct.pack("<I", 1) + struct.pack("<Q", 64) + struct.pack("<I", 8) + struct.pack("<Q", 512),
    ]
    header = (
        b"GGUF" + struct.pack("<I", 3) + struct.pack("<QQ", len(tensors), len(kv)) + b"".join(kv) + b"".join(tensors)
    )
    header += b"\0" * (-len(header) % 32)
    return header + b"\x01" * (512 + 2 * 34)


@pytest.fixture(scope="module")
def valid() -> bytes:
    return sample_gguf()


def check(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.gguf"
    path.write_bytes(data)
    try:
        read_header(path)
    except ModelLoadError:
        pass  # refused cleanly: what a bad header must get


def test_the_sample_is_valid(tmp_path, valid):
    path = tmp_path / "ok.gguf"
    path.write_bytes(valid)
    meta = read_metadata(path)
    assert meta["architecture"] == "llama" and meta["parameter_count"] == 32 * 4 + 64 and meta["has_chat_template"]


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda d: d[:100], "past the end"),
        (lambda d: d[:-10], "outside the file"),
        (lambda d: b"GGUX" + d[4:], "magic"),
        (lambda d: d[:4] + struct.pack("<I", 99) + d[8:], "version"),
        (lambda d: d[:8] + struct.pack("<Q", 1 << 40) + d[16:], "tensor or key count"),
        (lambda d: d[:16] + struct.pack("<Q", 1 << 40) + d[24:], "tensor or key count"),
        (
            lambda d: d.replace(_s("general.architecture"), struct.pack("<Q", 1 << 60) + b"general.architecture"),
            "string length",
        ),
        (lambda d: d.replace(struct.pack("<QQ", 32, 4), struct.pack("<QQ", 32, 1 << 50)), "dimension"),
        (lambda d: d.replace(struct.pack("<QQIQ", 32, 4, 0, 0), struct.pack("<QQIQ", 32, 4, 0, 3)), "aligned"),
        (lambda d: d.replace(struct.pack("<I", 32), struct.pack("<I", 33), 1), "alignment"),
        (
            lambda d: d.replace(
                struct.pack("<II", 9, 8) + struct.pack("<Q", 3), struct.pack("<II", 9, 8) + struct.pack("<Q", 1 << 30)
            ),
            "items",
        ),
        (lambda d: d.replace(_s("b.weight"), _s("a.weight")), "twice"),
    ],
)
def test_targeted_corruptions_are_refused(tmp_path, valid, mutate, reason):
    path = tmp_path / "bad.gguf"
    path.write_bytes(mutate(valid))
    with pytest.raises(ModelLoadError, match=reason):
        read_header(path)


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_byte_mutations_never_crash_or_hang(tmp_path, valid, data):
    blob = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    check(tmp_path, bytes(blob))


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.binary(max_size=64), junk=st.binary(max_size=2048))
def test_arbitrary_bytes_after_the_magic_never_crash_or_hang(tmp_path, prefix, junk):
    check(tmp_path, b"GGUF" + prefix + junk)
    check(tmp_path, b"GGUF" + struct.pack("<I", 3) + junk)
