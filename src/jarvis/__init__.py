"""JARVIS Core: a local-first AI assistant backend."""

__version__ = "0.1.0"
