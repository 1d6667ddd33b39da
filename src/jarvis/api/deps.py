"""Dependencies that routes declare: the services built in the lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, WebSocket

from jarvis.chat.service import ChatService
from jarvis.services import Services


def _services(request: Request) -> Services:
    return request.app.state.services


def _chat(request: Request) -> ChatService:
    return request.app.state.services.chat


def ws_services(websocket: WebSocket) -> Services:
    return websocket.app.state.services


ServicesDep = Annotated[Services, Depends(_services)]
ChatDep = Annotated[ChatService, Depends(_chat)]
