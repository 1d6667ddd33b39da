"""`/ws`: chat over WebSocket in both seed dialects, plus ping, history and cancel.

One generation per connection at a time: a chat frame that arrives while an answer is
streaming is refused with an error frame (`code: "busy"`); the client may send `cancel`
first. Ping, history and cancel are answered while an answer streams.

`{"type":"subscribe","events":[…],"log_level"?}` makes the socket also receive
`{"type":"event","event":<type>,"data":{…}}` frames (as `/api/events`, from a task of its own,
beside any chat); `{"type":"unsubscribe"}` stops them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import MutableMapping
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, WebSocket
from pydantic import TypeAdapter, ValidationError

from jarvis.api.deps import is_admin, user_of
from jarvis.api.errors import describe_validation
from jarvis.api.routes.events import READY, Selection, follow
from jarvis.api.schemas import (
    MessageOut,
    WsCancel,
    WsChat,
    WsChatMessage,
    WsFrame,
    WsHistory,
    WsPing,
    WsSubscribe,
    WsUnsubscribe,
)
from jarvis.api.streaming import usage_dict
from jarvis.chat.service import Failed, Finished, Queued, Reply, Started, Token
from jarvis.errors import JarvisError
from jarvis.services import Services
from jarvis.storage.tables import new_id

log = logging.getLogger(__name__)
router = APIRouter(tags=["websocket"])

_frames = TypeAdapter(WsFrame)
_TYPES = ("chat", "chat_message", "ping", "history", "cancel", "subscribe", "unsubscribe")


def _now() -> str:
    return datetime.now(UTC).isoformat()


@router.websocket("/ws")
async def websocket_chat(websocket: WebSocket) -> None:
    # A browser that sends its key as the subprotocol `bearer.<key>` must get a protocol back.
    offered = websocket.scope.get("subprotocols") or []
    chosen = "jarvis" if "jarvis" in offered else next((p for p in offered if p.startswith("bearer.")), None)
    await websocket.accept(subprotocol=chosen)
    await Connection(websocket, websocket.app.state.services).run()


class Connection:
    def __init__(self, websocket: WebSocket, services: Services) -> None:
        self.ws = websocket
        self.services = services
        self.user = user_of(websocket)
        self.admin = is_admin(websocket)
        self.session_id = new_id()
        self.task: asyncio.Task | None = None
        self.reply: Reply | None = None
        self.answer_started = False
        self.closed = False
        self.events_task: asyncio.Task | None = None
        self._send_lock = asyncio.Lock()

    async def send(self, frame: dict) -> None:
        async with self._send_lock:
            await self.ws.send_text(json.dumps(frame))

    async def error(self, message: str, code: str = "invalid_request") -> None:
        await self.send({"type": "error", "error": message, "code": code})

    async def run(self) -> None:
        await self.send(
            {
                "type": "connection",
                "status": "connected",
                "session_id": self.session_id,
                "message": "WebSocket chat connected successfully",
            }
        )
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                await self.handle(message)
        except Exception as exc:  # the peer vanished mid-send or mid-receive
            log.debug("websocket closed: %s", exc)
        finally:
            self.closed = True
            await self.stop_events()
            await self.stop("disconnected")

    async def handle(self, message: MutableMapping[str, Any]) -> None:
        text = message.get("text")
        if text is None:
            return await self.error("binary frames are not supported; send JSON text")
        limit = self.services.settings.max_ws_frame_bytes
        # a character is 1 to 4 bytes in UTF-8: encode only when the count alone cannot tell
        size = len(text) if len(text) > limit or len(text) * 4 <= limit else len(text.encode())
        if size > limit:
            return await self.error(f"frame of {size}+ bytes; the limit is {limit} bytes", "payload_too_large")
        try:
            raw = json.loads(text)
        except ValueError as exc:
            return await self.error(f"invalid JSON: {exc}")
        if not isinstance(raw, dict):
            return await self.error("a message must be a JSON object with a 'type'")
        kind = raw.get("type")
        if kind not in _TYPES:
            return await self.error(
                f"unknown message type {kind!r}; expected one of {', '.join(_TYPES)}", "unknown_type"
            )
        try:
            frame = _frames.validate_python(raw)
        except ValidationError as exc:
            return await self.error(describe_validation(exc.errors()))
        if isinstance(frame, WsPing):
            await self.send({"type": "pong", "timestamp": _now()})
        elif isinstance(frame, WsCancel):
            running = await self.stop("cancelled")
            if not running:
                await self.send({"type": "cancelled", "active": False})
        elif isinstance(frame, WsHistory):
            await self.history(frame.session_id or self.session_id)
        elif isinstance(frame, WsSubscribe):
            await self.subscribe(frame)
        elif isinstance(frame, WsUnsubscribe):
            running = await self.stop_events()
            await self.send({"type": "unsubscribed", "active": running})
        else:
            await self.start_chat(frame)

    async def subscribe(self, frame: WsSubscribe) -> None:
        try:
            selection = Selection.parse(frame.events, frame.log_level, user=self.user, admin=self.admin)
        except JarvisError as exc:
            return await self.error(exc.message, exc.code)
        await self.stop_events()
        self.events_task = asyncio.create_task(self.forward_events(selection))

    async def forward_events(self, selection: Selection) -> None:
        """Send the selected bus events until unsubscribed or closed; `subscribed` comes first."""
        try:
            async with aclosing(follow(self.services, selection)) as events:
                async for event in events:
                    if event.type == READY:
                        await self.send({"type": "subscribed", **event.data})
                    else:
                        # a datetime in someone's event data must not end the stream
                        data = json.loads(json.dumps(event.data, default=str))
                        await self.send({"type": "event", "event": event.type, "data": data})
        except Exception as exc:  # the socket went away while sending
            log.debug("websocket event stream ended: %s", exc)

    async def stop_events(self) -> bool:
        """Stop the event subscription; True if one was running."""
        task, self.events_task = self.events_task, None
        if task is None or task.done():
            return False
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return True

    async def history(self, session_id: str) -> None:
        try:
            messages = await self.services.chat.history(session_id, user=self.user)
        except JarvisError as exc:
            return await self.error(exc.message, exc.code)
        await self.send(
            {
                "type": "history",
                "session_id": session_id,
                "messages": [MessageOut.of(m).model_dump(mode="json") for m in messages],
            }
        )

    async def start_chat(self, frame: WsChatMessage | WsChat) -> None:
        if self.task and not self.task.done():
            return await self.error("an answer is still streaming on this connection; send cancel first", "busy")
        session_id = frame.session_id or self.session_id
        try:
            reply = await self.services.chat.prepare(
                frame.message,
                session_id=session_id,
                create_missing=session_id == self.session_id,
                model=frame.model,
                temperature=frame.temperature,
                max_tokens=frame.max_tokens,
                user=self.user,
            )
        except JarvisError as exc:
            return await self.error(exc.message, exc.code)
        self.reply = reply
        self.answer_started = False
        self.task = asyncio.create_task(self.answer(reply, frame))

    async def stop(self, status: str) -> bool:
        """Stop the running answer (stored with `status`); True if one was running."""
        task = self.task
        if task is None or task.done():
            return False
        if self.reply is not None:
            self.reply.stop_status = status
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if not self.closed and not self.answer_started:
            await self.send({"type": "cancelled", "active": True})
        return True

    async def answer(self, reply: Reply, frame: WsChatMessage | WsChat) -> None:
        streaming = isinstance(frame, WsChat) and frame.stream
        parts: list[str] = []
        started: Started | None = None
        try:
            async with aclosing(reply.events()) as events:
                async for event in events:
                    if isinstance(event, Token):
                        parts.append(event.text)
                        if streaming:
                            await self.send({"type": "stream_chunk", "content": event.text, "done": False})
                    elif isinstance(event, Started):
                        started = event
                        self.answer_started = True
                        if streaming:
                            await self.send(
                                {
                                    "type": "stream_start",
                                    "model": event.model,
                                    "session_id": event.session_id,
                                    "message_id": event.message_id,
                                }
                            )
                    elif isinstance(event, Queued):
                        if streaming:  # waiting for a free slot; 1: next
                            await self.send(
                                {
                                    "type": "queued",
                                    "position": event.position,
                                    "session_id": started.session_id if started else None,
                                }
                            )
                    elif isinstance(event, Finished | Failed):
                        assert started is not None  # a reply starts before it ends
                        await self.finish(frame, started, event)
        except asyncio.CancelledError:
            if self.closed or started is None:
                raise  # stop() tells the client about an answer that never started
            # cancelled by the client: tell it where the answer stopped
            await self.send(self.end_frame(frame, started, "".join(parts), reply.stop_status))
        except Exception as exc:  # the socket went away while sending
            reply.stop_status = "disconnected"
            log.debug("websocket send failed: %s", exc)

    async def finish(self, frame: WsChatMessage | WsChat, started: Started, event: Finished | Failed) -> None:
        if isinstance(event, Failed):
            await self.send(
                {"type": "error", "error": event.error, "code": event.code, "message_id": started.message_id}
            )
            return
        frame_out = self.end_frame(frame, started, event.message.content, "complete")
        frame_out["usage"] = usage_dict(event.usage)
        await self.send(frame_out)

    @staticmethod
    def end_frame(frame: WsChatMessage | WsChat, started: Started, content: str, status: str) -> dict:
        common = {"session_id": started.session_id, "message_id": started.message_id, "status": status}
        if isinstance(frame, WsChat) and frame.stream:
            return {"type": "stream_end", "full_response": content, "timestamp": _now(), "done": True, **common}
        if isinstance(frame, WsChat):
            return {"type": "response", "content": content, "model": started.model, "timestamp": _now(), **common}
        return {
            "type": "chat_response",
            "messageId": started.message_id,
            "response": content,
            "sessionId": started.session_id,
            "timestamp": _now(),
            **common,
        }
