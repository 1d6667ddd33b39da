"""`/api/chat/…`: sessions and messages (seed 1)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse

from jarvis.api.deps import ChatDep, UserDep
from jarvis.api.schemas import (
    MessageCreate,
    MessageOut,
    ReplyOut,
    SessionCreate,
    SessionDetail,
    SessionOut,
    SessionPage,
    SessionUpdate,
)
from jarvis.api.streaming import reply_stream, wants_sse
from jarvis.chat.service import ChatService, Failed, Finished, Started, run_to_end

router = APIRouter(prefix="/api/chat", tags=["chat"])


@router.get("/sessions", response_model=SessionPage)
async def list_sessions(
    chat: ChatDep,
    user: UserDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    q: Annotated[str | None, Query(max_length=200, description="text in the title or a message, any case")] = None,
) -> SessionPage:
    rows, total = await chat.list_sessions(user=user, limit=limit, offset=offset, text=q)
    sessions = [SessionOut.of(row, message_count=count) for row, count in rows]
    return SessionPage(sessions=sessions, total=total, limit=limit, offset=offset)


@router.post("/sessions", response_model=SessionOut, status_code=201)
async def create_session(body: SessionCreate, chat: ChatDep, user: UserDep) -> SessionOut:
    row = await chat.create_session(user=user, title=body.title, model=body.model, system_prompt=body.system_prompt)
    return SessionOut.of(row)


@router.get("/sessions/{session_id}", response_model=SessionDetail)
async def get_session(session_id: str, chat: ChatDep, user: UserDep) -> SessionDetail:
    row, messages = await chat.get_session(session_id, user=user)
    base = SessionOut.of(row, message_count=len(messages))
    return SessionDetail(**base.model_dump(), messages=[MessageOut.of(m) for m in messages])


@router.patch("/sessions/{session_id}", response_model=SessionOut)
async def update_session(session_id: str, body: SessionUpdate, chat: ChatDep, user: UserDep) -> SessionOut:
    """Rename, or change the session's model or system prompt."""
    row = await chat.update_session(
        session_id, user=user, title=body.title, model=body.model, system_prompt=body.system_prompt
    )
    return SessionOut.of(row)


@router.delete("/sessions/{session_id}/messages/{message_id}")
async def rewind_session(session_id: str, message_id: str, chat: ChatDep, user: UserDep) -> dict:
    """Delete this message and every later one (to regenerate an answer, or edit a message and
    send it again) → `{"id", "deleted": [message ids]}`."""
    deleted = await chat.rewind(session_id, message_id, user=user)
    return {"id": session_id, "deleted": deleted}


@router.delete("/sessions/{session_id}")
async def delete_session(session_id: str, chat: ChatDep, user: UserDep) -> dict:
    await chat.delete_session(session_id, user=user)
    return {"id": session_id, "deleted": True}


@router.post(
    "/messages",
    response_model=ReplyOut,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the answer, or SSE when streaming"}},
)
async def send_message(
    body: MessageCreate, chat: ChatDep, user: UserDep, accept: Annotated[str | None, Header()] = None
) -> Any:  # ReplyOut, or the SSE stream
    """Send a message and get the stored assistant answer, or an SSE stream of it
    (`stream: true` or `Accept: text/event-stream`)."""
    answered = await answer_message(body, chat, user, accept)
    if not isinstance(answered, tuple):
        return answered
    started, outcome = answered
    message = MessageOut.of(outcome.message).model_dump()
    return ReplyOut(**message, sessionId=started.session_id, user_message_id=started.user_message_id)


async def answer_message(
    body: MessageCreate, chat: ChatService, user: str, accept: str | None
) -> EventSourceResponse | tuple[Started, Finished]:
    """Run a chat request: an SSE response when streaming is asked for, else `(started, finished)`.
    Shared by `/api/chat/messages` and the second seed's `/api/v1/chat/`."""
    reply = await chat.prepare(
        body.message,
        session_id=body.session_id,
        model=body.model,
        temperature=body.temperature,
        max_tokens=body.max_tokens,
        top_p=body.top_p,
        seed=body.seed,
        user=user,
    )
    if wants_sse(body.stream, accept):
        return reply_stream(reply)
    started, outcome = await run_to_end(reply)
    if isinstance(outcome, Failed):
        raise outcome.as_error(message_id=started.message_id, session_id=started.session_id)
    return started, outcome
