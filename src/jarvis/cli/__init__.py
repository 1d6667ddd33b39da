"""The `jarvis` command: thin commands over the same services as the server."""
