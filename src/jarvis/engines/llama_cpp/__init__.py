"""The embedded llama.cpp engine (see engine.py)."""

from jarvis.engines.llama_cpp.engine import LlamaCppEngine, LoadedModel

__all__ = ["LlamaCppEngine", "LoadedModel"]
