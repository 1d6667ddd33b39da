"""Limits on what one client may ask of the server: body size and open connections.
(Message length, WebSocket frame size and the generation queue are checked where they
are understood: the chat service, the socket handler and the engine.)

A pure ASGI middleware, so streaming responses pass through untouched.
"""

from __future__ import annotations

import json
from collections import Counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jarvis.config import Settings


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.max_connections = settings.max_connections_per_client
        self.open: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("?", 0))[0]
        if self.open[client] >= self.max_connections:
            return await _refuse(
                scope,
                receive,
                send,
                429,
                "too_many_connections",
                f"this client has {self.max_connections} connections open already",
            )
        self.open[client] += 1
        try:
            if scope["type"] == "http":
                length = dict(scope.get("headers", [])).get(b"content-length")
                if length and length.isdigit() and int(length) > self.max_body:
                    return await _refuse(
                        scope, receive, send, 413, "payload_too_large", f"request body over {self.max_body} bytes"
                    )
                receive, send = self._counting(receive, send)
            await self.app(scope, receive, send)
        finally:
            self.open[client] -= 1
            if self.open[client] <= 0:
                del self.open[client]

    def _counting(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        """A body sent without Content-Length (chunked) is counted as it arrives. Past the limit
        reading fails, and whatever answer the app makes of that is replaced by a 413."""
        seen = 0
        too_large = False

        async def counted() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    too_large = True
                    raise _BodyTooLarge()
            return message

        async def answer(message: Message) -> None:
            if not too_large:
                return await send(message)
            if message["type"] == "http.response.start":
                body = json.dumps(
                    {"error": {"code": "payload_too_large", "message": f"request body over {self.max_body} bytes"}}
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 413,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})

        return counted, answer


class _BodyTooLarge(Exception):
    pass


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.close", "code": 1013, "reason": message[:120]})
        return
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
