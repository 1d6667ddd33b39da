"""Dependencies that routes declare: the services built in the lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, WebSocket
from starlette.requests import HTTPConnection

from jarvis.chat.service import ChatService
from jarvis.errors import Forbidden
from jarvis.services import Services


def _services(request: Request) -> Services:
    return request.app.state.services


def _chat(request: Request) -> ChatService:
    return request.app.state.services.chat


def ws_services(websocket: WebSocket) -> Services:
    return websocket.app.state.services


def user_of(connection: HTTPConnection) -> str:
    """The user the security middleware recognised (one "default" user without keys)."""
    return connection.scope.get("state", {}).get("user") or "default"


def is_admin(connection: HTTPConnection) -> bool:
    """Whether the security middleware recognised an admin (see api/security.py)."""
    return bool(connection.scope.get("state", {}).get("admin", True))


def require_admin(connection: HTTPConnection) -> None:
    """For routes that manage the server. Raises Forbidden for an ordinary user."""
    if not is_admin(connection):
        raise Forbidden("only an admin may do this (JARVIS_ADMIN_USERS)")


ServicesDep = Annotated[Services, Depends(_services)]
ChatDep = Annotated[ChatService, Depends(_chat)]
UserDep = Annotated[str, Depends(user_of)]
AdminDep = Annotated[bool, Depends(is_admin)]
AdminOnly = Depends(require_admin)
