"""Server-Sent Events for a reply: `start`, `queued` ({"position"}: waiting for a free slot),
`token` ({"content"}), `end`, `error`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing

from sse_starlette import EventSourceResponse

from jarvis.api.schemas import MessageOut
from jarvis.chat.service import Failed, Finished, Queued, Reply, Started, Token
from jarvis.engines.base import Usage


def usage_dict(usage: Usage | None) -> dict:
    prompt = usage.prompt_tokens if usage else None
    completion = usage.completion_tokens if usage else None
    total = prompt + completion if prompt is not None and completion is not None else None
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def wants_sse(stream: bool, accept: str | None) -> bool:
    return stream or "text/event-stream" in (accept or "")


async def _reply_events(reply: Reply) -> AsyncIterator[dict]:
    async with aclosing(reply.events()) as events:
        async for event in events:
            if isinstance(event, Token):
                yield {"event": "token", "data": json.dumps({"content": event.text})}
            elif isinstance(event, Started):
                data: dict = {
                    "session_id": event.session_id,
                    "sessionId": event.session_id,
                    "message_id": event.message_id,
                    "user_message_id": event.user_message_id,
                    "model": event.model,
                }
                yield {"event": "start", "data": json.dumps(data)}
            elif isinstance(event, Queued):
                yield {"event": "queued", "data": json.dumps({"position": event.position})}
            elif isinstance(event, Finished):
                data = {
                    "message": MessageOut.of(event.message).model_dump(mode="json"),
                    "usage": usage_dict(event.usage),
                }
                yield {"event": "end", "data": json.dumps(data)}
            elif isinstance(event, Failed):
                data = {
                    "code": event.code,
                    "error": event.error,
                    "message": MessageOut.of(event.message).model_dump(mode="json"),
                }
                yield {"event": "error", "data": json.dumps(data)}


def reply_stream(reply: Reply) -> EventSourceResponse:
    """Stream a reply as SSE. When the client goes away the task is cancelled, which stops
    generation and stores the partial answer as `disconnected`."""
    return EventSourceResponse(_reply_events(reply), ping=15)
