"""`/api/v1/chat/…`: the second seed's endpoints, served by the same chat service."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Header

from jarvis.api.deps import ChatDep, ServicesDep, UserDep
from jarvis.api.routes.health import health_report
from jarvis.api.schemas import ChatV1Request, ChatV1Response
from jarvis.api.streaming import reply_stream, usage_dict, wants_sse
from jarvis.chat.service import Failed, run_to_end

router = APIRouter(prefix="/api/v1/chat", tags=["chat (v1)"])


@router.post(
    "/",
    response_model=ChatV1Response,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the answer, or SSE when streaming"}},
)
async def chat(body: ChatV1Request, chat: ChatDep, user: UserDep, accept: Annotated[str | None, Header()] = None):
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
    return ChatV1Response(
        response=outcome.message.content,
        model=started.model,
        session_id=started.session_id,
        message_id=started.message_id,
        status="success",
        timestamp=datetime.now(timezone.utc),
        usage=usage_dict(outcome.usage),
    )


@router.get("/health")
async def chat_health(services: ServicesDep) -> dict:
    report = await health_report(services)
    return {**report, "status": "healthy" if report["status"] == "ok" else report["status"]}


@router.get("/models")
async def chat_models(services: ServicesDep) -> dict:
    models = await services.engines.list_models()
    loaded = services.engines.local.loaded
    return {
        "models": [model.name for model in models],
        "details": [{"name": m.name, "engine": m.engine, "context_length": m.context_length} for m in models],
        "default": loaded.name if loaded else services.settings.default_model,
    }
