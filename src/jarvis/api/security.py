"""Who may talk to the server: API keys, loopback-only without them, DNS-rebinding defence.

- With `JARVIS_API_KEY` (one key, user "default") or `JARVIS_API_KEYS_FILE` (named users),
  every `/api`, `/v1` and `/ws` request needs `Authorization: Bearer <key>`; a browser's
  WebSocket, which cannot set headers, may offer the subprotocol `bearer.<key>` instead.
  `/api/health` stays open and then says only whether the service is up.
- Admins (`JARVIS_ADMIN_USERS`; unset: the `JARVIS_API_KEY` user; without keys: the one
  local user) may manage the server: plugins on and off, the logs, everyone's events.
- With no key, only clients on loopback are served (so `uvicorn --host 0.0.0.0` without a
  key exposes nothing), and `jarvis serve` refuses a non-loopback address unless
  `JARVIS_INSECURE` says it is meant.
- `/metrics` needs a key like the API when keys are set; `JARVIS_METRICS_TOKEN` is a bearer
  token that reads `/metrics` and nothing else (from any address: a Prometheus scraper).
- A request from this machine (a loopback client) whose Host header is not a loopback name
  (or one of `JARVIS_ALLOWED_HOSTS`) is refused: a web page that rebinds its DNS name to
  127.0.0.1 cannot reach the API through the user's browser.

A pure ASGI middleware: it must not buffer streaming responses.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from jarvis.config import Settings
from jarvis.errors import InvalidInput

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
PROTECTED = ("/api", "/v1", "/ws", "/metrics")
METRICS = "/metrics"
OPEN = ("/api/health", "/health")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_keys(settings: Settings) -> dict[str, str]:
    """key -> user. Raises InvalidInput for an unreadable keys file."""
    keys: dict[str, str] = {}
    if settings.api_key:
        keys[settings.api_key] = "default"
    if settings.api_keys_file:
        path = Path(settings.api_keys_file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise InvalidInput(f"cannot read JARVIS_API_KEYS_FILE {path}: {exc}") from exc
        if text.lstrip().startswith("{"):
            pairs = json.loads(text).items()
        else:
            pairs = [line.split(":", 1) for line in text.splitlines() if line.strip() and not line.startswith("#")]
        for user, key in pairs:
            user, key = str(user).strip(), str(key).strip()
            if not user or len(key) < 8:
                raise InvalidInput(f"JARVIS_API_KEYS_FILE: user {user!r} needs a key of 8 characters or more")
            keys[key] = user
    return keys


def check_bind(settings: Settings, host: str) -> None:
    """Refuse to serve a non-loopback address with no key, unless told it is on purpose."""
    if not is_loopback(host) and not load_keys(settings) and not settings.insecure:
        raise SystemExit(
            f"refusing to listen on {host} without JARVIS_API_KEY (anyone on the network could use it); "
            "set JARVIS_API_KEY, or JARVIS_INSECURE=true if that is really what you want"
        )


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.keys = load_keys(settings)
        self.admins = set(settings.admin_users) or {"default"}
        self.allowed_hosts = LOOPBACK_NAMES | {h.lower() for h in settings.allowed_hosts}
        self.metrics_token = settings.metrics_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        if scope["type"] == "http" and scope.get("method") == "OPTIONS":
            return await self.app(scope, receive, send)  # CORS preflights carry no credentials
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        scope.setdefault("state", {})
        client = (scope.get("client") or ("", 0))[0]
        # DNS rebinding reaches us through a browser on this machine: a loopback client
        # naming a host that is not ours. Remote clients (a LAN server) are judged by key.
        if is_loopback(client) and _host_name(headers.get("host", "")) not in self.allowed_hosts:
            return await _refuse(
                scope,
                receive,
                send,
                403,
                "forbidden_host",
                "loopback clients must name a loopback host (or one of JARVIS_ALLOWED_HOSTS)",
            )
        if path == METRICS and self.metrics_token:
            bearer = _bearer(headers)
            if bearer is not None and hmac.compare_digest(bearer.encode(), self.metrics_token.encode()):
                scope["state"].update(user=None, admin=False, authenticated=True)
                return await self.app(scope, receive, send)
            if not self.keys:
                return await _refuse(
                    scope,
                    receive,
                    send,
                    401,
                    "unauthorized",
                    "/metrics needs JARVIS_METRICS_TOKEN (Authorization: Bearer <token>)",
                )
        if not self.keys:
            if not is_loopback(client) and not self.settings.insecure:
                return await _refuse(
                    scope,
                    receive,
                    send,
                    403,
                    "remote_access_disabled",
                    "remote clients need an API key: set JARVIS_API_KEY on the server",
                )
            scope["state"]["user"] = "default"
            scope["state"]["admin"] = True
            return await self.app(scope, receive, send)
        user = self._user(headers, scope)
        scope["state"]["user"] = user
        scope["state"]["admin"] = user is not None and user in self.admins
        scope["state"]["authenticated"] = user is not None
        if user is None and path.startswith(PROTECTED) and not path.startswith(OPEN):
            return await _refuse(
                scope, receive, send, 401, "unauthorized", "missing or wrong API key (Authorization: Bearer <key>)"
            )
        return await self.app(scope, receive, send)

    def _user(self, headers: dict, scope: Scope) -> str | None:
        offered = []
        bearer = _bearer(headers)
        if bearer is not None:
            offered.append(bearer)
        if scope["type"] == "websocket":
            for protocol in headers.get("sec-websocket-protocol", "").split(","):
                protocol = protocol.strip()
                if protocol.startswith("bearer."):
                    offered.append(protocol[7:])
        for candidate in offered:
            for key, user in self.keys.items():
                if hmac.compare_digest(candidate.encode(), key.encode()):
                    return user
        return None


def _bearer(headers: dict) -> str | None:
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str) -> None:
    if scope["type"] == "websocket":
        await receive()  # the connect event
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
