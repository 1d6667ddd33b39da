"""`/api/v1/chat/…`: the second seed's endpoints, served by the same chat service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header

from jarvis.api.deps import ChatDep, ServicesDep, UserDep
from jarvis.api.routes.chat import answer_message
from jarvis.api.routes.health import health_report
from jarvis.api.schemas import ChatV1Request, ChatV1Response
from jarvis.api.streaming import usage_dict

router = APIRouter(prefix="/api/v1/chat", tags=["chat (v1)"])


@router.post(
    "/",
    response_model=ChatV1Response,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the answer, or SSE when streaming"}},
)
async def chat(
    body: ChatV1Request, chat: ChatDep, user: UserDep, accept: Annotated[str | None, Header()] = None
) -> Any:  # ChatV1Response, or the SSE stream
    answered = await answer_message(body, chat, user, accept)
    if not isinstance(answered, tuple):
        return answered  # the SSE stream
    started, outcome = answered
    return ChatV1Response(
        response=outcome.message.content,
        model=started.model,
        session_id=started.session_id,
        message_id=started.message_id,
        status="success",
        timestamp=datetime.now(UTC),
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
