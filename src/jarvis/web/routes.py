"""Serves the web console: `index.html` for `/` when a browser asks for HTML, and the files
under `static/` at `/console/…`, with security headers and gzip.

Everything is read from the package, so the console works offline and with no Node.js.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from jarvis.errors import NotFound

STATIC = Path(__file__).parent / "static"
PREFIX = "/console"

# No inline script or style anywhere: the console's code is its own files. `connect-src 'self'`
# covers the same-origin WebSocket and SSE streams.
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
COMPRESSIBLE = {".js", ".mjs", ".css", ".html", ".json", ".svg", ""}

router = APIRouter(include_in_schema=False)


def wants_html(request: Request) -> bool:
    """A browser navigating to a page: `text/html` in Accept before any JSON preference."""
    accept = request.headers.get("accept", "").lower()
    return "text/html" in accept and "application/json" not in accept.split(",")[0]


@lru_cache(maxsize=256)
def _load(path: Path) -> tuple[bytes, bytes, str]:
    """The file, its gzip form, and an ETag (files do not change while the server runs)."""
    data = path.read_bytes()
    return data, gzip.compress(data, 9, mtime=0), '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def _serve(request: Request, path: Path) -> Response:
    data, packed, etag = _load(path)
    headers = {**SECURITY_HEADERS, "ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    media_type = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix in COMPRESSIBLE and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        data = packed
    if media_type.startswith("text/") or media_type == "application/json":
        media_type += "; charset=utf-8"
    return Response(data, media_type=media_type, headers=headers)


def console_page(request: Request) -> Response:
    """The console's single page (its views are routed in the browser)."""
    return _serve(request, STATIC / "index.html")


@router.get(PREFIX + "/{file_path:path}")
async def console_file(file_path: str, request: Request) -> Response:
    path = (STATIC / file_path).resolve()
    if not path.is_relative_to(STATIC.resolve()) or not path.is_file():
        raise NotFound(f"no console file {file_path!r}")
    return _serve(request, path)
