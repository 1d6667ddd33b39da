"""Request ids and the access log, as a pure ASGI middleware.

Pure ASGI rather than Starlette's BaseHTTPMiddleware, which buffers and breaks streaming
responses: SSE and WebSocket pass straight through, and their record is written when they end.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jarvis.logs.capture import ACCESS_LOGGER, request_id_var

access_log = logging.getLogger(ACCESS_LOGGER)

REQUEST_ID_HEADER = b"x-request-id"
# An incoming id is kept only if it is short and plain (it ends up in logs and headers).
_SANE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def incoming_request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == REQUEST_ID_HEADER:
            text = value.decode("latin-1").strip()
            return text if _SANE_ID.match(text) else None
    return None


def _with_request_id(headers: list[tuple[bytes, bytes]], request_id: str) -> list[tuple[bytes, bytes]]:
    kept = [(name, value) for name, value in headers if name.lower() != REQUEST_ID_HEADER]
    return [*kept, (REQUEST_ID_HEADER, request_id.encode("latin-1"))]


class AccessLogMiddleware:
    """Gives every HTTP request and WebSocket a request id (the client's `X-Request-ID` when
    it is sane), returns it as `X-Request-ID`, and logs one `jarvis.access` record when the
    exchange ends: method, path, status, duration_ms, request_id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope.get("headers") or []) or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
                message = {**message, "headers": _with_request_id(list(message.get("headers") or []), request_id)}
            elif kind == "websocket.accept":
                status = 101
                message = {**message, "headers": _with_request_id(list(message.get("headers") or []), request_id)}
            elif kind == "websocket.close" and status is None:
                status = 403  # closed before the handshake completed: the server refuses it
            await send(message)

        failed = False
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            failed = True
            raise
        finally:
            if status is None:
                status = 500 if failed else 499  # 499: the client left before any response
            self._log(scope, request_id, status, (time.perf_counter() - started) * 1000)
            if not failed:
                # after an error the id stays set, so the error handler's record carries it too
                request_id_var.reset(token)

    @staticmethod
    def _log(scope: Scope, request_id: str, status: int, duration_ms: float) -> None:
        method = scope.get("method", "WS") if scope["type"] == "http" else "WS"
        path = scope.get("path", "")
        query = (scope.get("query_string") or b"").decode("latin-1")
        client = scope.get("client")
        fields = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(duration_ms, 2),
            "request_id": request_id,
        }
        if query:
            fields["query"] = query  # redacted by the capture like everything else
        if client:
            fields["client"] = client[0]
        user = (scope.get("state") or {}).get("user")
        if user:
            fields["user"] = user  # set by the security middleware inside this one
        target = f"{path}?{query}" if query else path
        access_log.info("%s %s %s %.1f ms", method, target, status, duration_ms, extra=fields)
