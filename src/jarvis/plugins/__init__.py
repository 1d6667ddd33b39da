"""Plugins: pluggy hooks for chat commands, tools, and hooks around each message."""
