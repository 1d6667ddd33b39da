"""Long-term memory: storage (store.py), full-text search (search.py), capture from chat
statements (capture.py) and the service the API, the chat and the commands use (service.py)."""

from jarvis.memory.capture import Capture, detect
from jarvis.memory.service import (
    KINDS,
    MemoryNotFound,
    MemoryService,
    MemoryStats,
    SimilarityScorer,
    decode_ids,
    encode_ids,
    render_for_prompt,
)

__all__ = [
    "KINDS",
    "Capture",
    "MemoryNotFound",
    "MemoryService",
    "MemoryStats",
    "SimilarityScorer",
    "decode_ids",
    "detect",
    "encode_ids",
    "render_for_prompt",
]
