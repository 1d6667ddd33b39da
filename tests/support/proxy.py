"""A forward proxy for plain http on loopback, and the environment that points clients at it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import pytest

PROXY_VARIABLES = ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy")


class _Relay(BaseHTTPRequestHandler):
    """Takes the absolute URL of a request and fetches its path and query from `upstream`, so a
    host name only the proxy knows still answers; records every URL asked for in `seen`."""

    def do_HEAD(self):
        self._relay()

    def do_GET(self):
        self._relay()

    def _relay(self):
        self.server.seen.append(self.path)
        parts = urlsplit(self.path)
        target = self.server.upstream + parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() in ("range", "accept-encoding", "authorization", "accept")
        }
        with httpx.Client(trust_env=False) as http:
            response = http.request(self.command, target, headers=headers)
        self.send_response(response.status_code)
        for name in ("content-type", "content-range", "accept-ranges", "location", "etag", "x-repo-commit"):
            if name in response.headers:
                self.send_header(name, response.headers[name])
        self.send_header("Content-Length", response.headers.get("content-length", str(len(response.content))))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.content)

    def log_message(self, *args):
        pass


@contextmanager
def forward_proxy(upstream: str, monkeypatch: pytest.MonkeyPatch, *, no_proxy: str = "") -> Iterator[list[str]]:
    """Serve the proxy and set HTTP_PROXY to it (NO_PROXY to `no_proxy`); yields the URLs it was asked for."""
    relay = ThreadingHTTPServer(("127.0.0.1", 0), _Relay)
    relay.daemon_threads = True
    relay.seen, relay.upstream = [], upstream
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    try:
        for name in PROXY_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{relay.server_port}")
        if no_proxy:
            monkeypatch.setenv("NO_PROXY", no_proxy)
        yield relay.seen
    finally:
        relay.shutdown()
        relay.server_close()
