"""HTTP and WebSocket edge: the only package that imports the web framework."""
