"""Quantization names in GGUF file names, and the order variants are offered in."""

from __future__ import annotations

import re

# Longest names first so Q4_K_M is not read as Q4_K. A name must not run on with `_` either:
# Q4_0_4_4 (an ARM repacking) is not Q4_0.
_QUANT_RE = re.compile(
    r"(?<![A-Za-z0-9])(IQ[1-4]_(?:XXS|XS|S|M|NL)|Q[2-8]_K_(?:XL|S|M|L)|Q[2-8]_K|Q4_0_[48]_[48]|Q[4-8]_[01]|TQ[12]_0|BF16|F16|F32)"
    r"(?![A-Za-z0-9_])",
    re.IGNORECASE,
)
_SPLIT_RE = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)

# What most people should take first; the rest by size, smallest first.
PREFERRED = ["Q4_K_M", "Q4_K_S", "Q5_K_M", "Q6_K", "Q8_0"]


def is_quantization(name: str) -> bool:
    """`Q4_K_M`, `q8_0`, … (as in `qwen:Q8_0`), as opposed to a tag such as `7b`."""
    return _QUANT_RE.fullmatch(name) is not None


def quantization_of(file_name: str) -> str | None:
    """`Qwen2.5-7B-Instruct-Q4_K_M.gguf` → `Q4_K_M` (None when the name carries none)."""
    matches = _QUANT_RE.findall(file_name.rsplit("/", 1)[-1])
    return matches[-1].upper() if matches else None


def split_part(file_name: str) -> tuple[int, int] | None:
    """`x-00002-of-00003.gguf` → (2, 3); None for a file that is not part of a split GGUF."""
    match = _SPLIT_RE.search(file_name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def variant_order(quantization: str, size: int) -> tuple[int, int]:
    rank = PREFERRED.index(quantization) if quantization in PREFERRED else len(PREFERRED)
    return rank, size
