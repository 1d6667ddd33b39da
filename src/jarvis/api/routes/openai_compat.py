"""OpenAI-compatible API under `/v1`: models, chat completions (streamed as OpenAI does),
completions, embeddings. Served by the same chat service, engines and store as the native API.

Nothing is stored unless the request names a JARVIS session in the `X-Jarvis-Session`
header; then the new user message and the answer join that session (created if new).
"""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from jarvis.api.compat import FINISH_REASONS, compat_route, openai_error, split_conversation, text_of
from jarvis.api.deps import ServicesDep, UserDep
from jarvis.chat.service import Failed, Finished, Reply, Started, Token, run_to_end
from jarvis.engines.base import SAMPLING_FIELDS, Usage
from jarvis.errors import InvalidInput

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], route_class=compat_route(openai_error))

SessionHeader = Annotated[str | None, Header(alias="X-Jarvis-Session", max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict] | None = None
    tool_calls: list[dict] | None = None
    tool_call_id: str | None = None


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"] = "text"


class StreamOptions(BaseModel):
    include_usage: bool = False


class Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: Annotated[str, Field(min_length=1, max_length=200)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=32768)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=32768)] | None = None
    n: Annotated[int, Field(ge=1, le=1, description="only 1 is supported")] = 1
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    seed: int | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    # not OpenAI's, but llama-server's and vLLM's: clients of those send them
    top_k: Annotated[int, Field(ge=0, le=1000)] | None = None
    min_p: Annotated[float, Field(ge=0, le=1)] | None = None
    repeat_penalty: Annotated[float, Field(gt=0, le=10)] | None = None

    @property
    def sampling(self) -> dict:
        return {name: value for name in SAMPLING_FIELDS if (value := getattr(self, name, None)) is not None}

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class ChatCompletionRequest(Sampling):
    messages: Annotated[list[Message], Field(min_length=1)]
    response_format: ResponseFormat | None = None
    tools: list[dict] | None = None


class CompletionRequest(Sampling):
    prompt: str | list[str]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: Annotated[str, Field(min_length=1, max_length=200)]
    input: str | Annotated[list[str], Field(min_length=1, max_length=256)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None


def _conversation(messages: list[Message]) -> list[dict]:
    converted = []
    for message in messages:
        item: dict[str, Any] = {
            "role": "system" if message.role == "developer" else message.role,
            "content": text_of(message.content),
        }
        if message.tool_calls:
            item["tool_calls"] = message.tool_calls
        if message.tool_call_id:
            item["tool_call_id"] = message.tool_call_id
        converted.append(item)
    return converted


def _usage(usage: Usage | None) -> dict:
    prompt = (usage.prompt_tokens if usage else None) or 0
    completion = (usage.completion_tokens if usage else None) or 0
    shaped: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if (
        usage is not None and usage.cached_tokens is not None
    ):  # prompt tokens read from the cache, as OpenAI reports them
        shaped["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return shaped


def _tool_calls(calls: list[dict] | None) -> list[dict] | None:
    if not calls:
        return None
    return [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
        for c in calls
    ]


@router.get("/models")
async def list_models(services: ServicesDep) -> dict:
    created = int(services.started_at)
    models = await services.engines.list_models()
    return {
        "object": "list",
        "data": [{"id": m.name, "object": "model", "created": created, "owned_by": m.engine} for m in models],
    }


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, services: ServicesDep) -> dict:
    services.engines.route(model_id)
    return {"id": model_id, "object": "model", "created": int(services.started_at), "owned_by": "jarvis"}


@router.post("/chat/completions")
async def chat_completions(
    body: ChatCompletionRequest, services: ServicesDep, user: UserDep, session: SessionHeader = None
) -> Any:  # an EventSourceResponse or the completion
    text, conversation = split_conversation(_conversation(body.messages))
    json_mode = bool(body.response_format and body.response_format.type != "text")
    reply = await services.chat.prepare(
        text,
        session_id=session,
        create_missing=True,
        model=body.model,
        temperature=body.temperature,
        max_tokens=body.limit,
        top_p=body.top_p,
        seed=body.seed,
        stop=body.stops,
        json_mode=json_mode,
        conversation=conversation,
        persist=session is not None,
        user=user,
        client_tools=body.tools or None,
        sampling=body.sampling,
    )
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return EventSourceResponse(_chat_stream(reply, completion_id, created, body.model, include_usage), ping=15)
    _started, outcome = await run_to_end(reply)
    if isinstance(outcome, Failed):
        raise outcome.as_error()
    message: dict[str, Any] = {"role": "assistant", "content": outcome.message.content}
    if outcome.tool_calls:
        message["tool_calls"] = _tool_calls(outcome.tool_calls)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": FINISH_REASONS.get(outcome.message.finish_reason or "stop", "stop"),
            }
        ],
        "usage": _usage(outcome.usage),
        "system_fingerprint": None,
    }


async def _chat_stream(
    reply: Reply, completion_id: str, created: int, model: str, include_usage: bool
) -> AsyncIterator[dict]:
    def chunk(delta: dict, finish: str | None = None, **extra: Any) -> dict:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra,
        }
        return {"data": json.dumps(data)}

    async for event in reply.events():
        if isinstance(event, Token):
            yield chunk({"content": event.text})
        elif isinstance(event, Started):
            yield chunk({"role": "assistant", "content": ""})
        elif isinstance(event, Finished):
            if event.tool_calls:
                calls = [{"index": i, **call} for i, call in enumerate(_tool_calls(event.tool_calls) or [])]
                yield chunk({"tool_calls": calls})
            yield chunk({}, FINISH_REASONS.get(event.message.finish_reason or "stop", "stop"))
            if include_usage:
                data = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": _usage(event.usage),
                }
                yield {"data": json.dumps(data)}
        elif isinstance(event, Failed):
            yield {"data": json.dumps({"error": {"message": event.error, "type": "server_error", "code": event.code}})}
            return
    yield {"data": "[DONE]"}


@router.post("/completions")
async def completions(
    body: CompletionRequest, services: ServicesDep
) -> Any:  # an EventSourceResponse or the completion
    prompt = body.prompt if isinstance(body.prompt, str) else "".join(body.prompt)
    engine, engine_model, options = await services.chat.prepare_completion(
        body.model,
        prompt,
        max_tokens=body.limit or 16,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        stop=body.stops,
        **body.sampling,
    )
    completion_id, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

    def shaped(text: str, finish: str | None, usage: Usage | None = None) -> dict:
        data = {
            "id": completion_id,
            "object": "text_completion",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
        }
        if usage is not None:
            data["usage"] = _usage(usage)
        return data

    if body.stream:

        async def stream() -> AsyncIterator[dict]:
            async for piece in engine.complete(engine_model, prompt, options):
                if piece.text:
                    yield {"data": json.dumps(shaped(piece.text, None))}
                if piece.finish_reason:
                    yield {"data": json.dumps(shaped("", FINISH_REASONS.get(piece.finish_reason, "stop")))}
            yield {"data": "[DONE]"}

        return EventSourceResponse(stream(), ping=15)
    parts, final = [], None
    async for piece in engine.complete(engine_model, prompt, options):
        parts.append(piece.text)
        final = piece if piece.finish_reason else final
    reason = FINISH_REASONS.get((final.finish_reason if final else None) or "stop", "stop")
    return shaped("".join(parts), reason, final.usage if final else None)


@router.post("/embeddings")
async def embeddings(body: EmbeddingRequest, services: ServicesDep) -> dict:
    texts = [body.input] if isinstance(body.input, str) else body.input
    if any(not text for text in texts):
        raise InvalidInput("input must not contain empty strings")
    engine, engine_model = await services.engines.check(body.model)
    vectors, tokens = await engine.embed(engine_model, texts)
    if body.dimensions is not None and body.dimensions != len(vectors[0]):
        raise InvalidInput(
            f"{body.model} makes {len(vectors[0])}-dimensional embeddings; dimensions cannot change that"
        )
    encoded: list[str] | list[list[float]]
    if body.encoding_format == "base64":  # what the official client asks for: little-endian float32
        encoded = [base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() for v in vectors]
    else:
        encoded = vectors
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(encoded)],
        "model": body.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
