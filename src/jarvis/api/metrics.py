"""Counts every HTTP request and WebSocket by route template, as a pure ASGI middleware (it
must not buffer streams: a stream's duration is measured to its end)."""

from __future__ import annotations

import time

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jarvis.metrics import UNMATCHED


def route_template(scope: Scope) -> str:
    """The path template of the route that served `scope` (`/api/chat/sessions/{session_id}`)."""
    route = scope.get("route")
    if route is not None and getattr(route, "path", None):
        return route.path
    app = scope.get("app")
    for candidate in getattr(getattr(app, "router", None), "routes", []):
        match, _ = candidate.matches(scope)
        if match == Match.FULL:
            return getattr(candidate, "path", UNMATCHED)
    return UNMATCHED


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def observe(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
            elif kind == "websocket.accept":
                status = 101
            elif kind == "websocket.close" and not status:
                status = 403
            await send(message)

        try:
            await self.app(scope, receive, observe)
        except Exception:
            status = status or 500
            raise
        finally:
            services = getattr(scope["app"].state, "services", None) if "app" in scope else None
            if services is not None:
                method = scope.get("method", "GET") if scope["type"] == "http" else "WS"
                services.metrics.observe_request(
                    method, route_template(scope), status or 499, time.perf_counter() - started
                )
