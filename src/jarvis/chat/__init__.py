"""Chat: sessions, messages and prompt assembly (no web framework here)."""
