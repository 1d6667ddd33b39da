"""Ollama-compatible API: `/api/chat`, `/api/generate` (NDJSON streams with Ollama's fields and
final statistics), `/api/tags`, `/api/show`, `/api/ps`, `/api/pull` (Ollama's status
sequence, driven by the download manager), `/api/delete`, `/api/embed`, `/api/version`.

Same chat service, engines, store and downloads as the native API. Nothing is stored unless
the request names a JARVIS session in the `X-Jarvis-Session` header.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from jarvis import __version__
from jarvis.api.compat import FINISH_REASONS, compat_route, ollama_error, split_conversation
from jarvis.api.deps import AdminOnly, ServicesDep, UserDep
from jarvis.chat.service import Failed, Finished, Reply, Started, Token, run_to_end
from jarvis.engines.base import SAMPLING_FIELDS, Usage
from jarvis.errors import EngineError, InvalidInput, ModelNotFound
from jarvis.models.capabilities import capabilities, chat_template
from jarvis.models.installed import find_installed
from jarvis.models.store import Manifest
from jarvis.services import Services
from jarvis.storage.tables import ChatMessage

router = APIRouter(prefix="/api", tags=["Ollama-compatible"], route_class=compat_route(ollama_error))

NDJSON = "application/x-ndjson"
SessionHeader = Annotated[str | None, Header(alias="X-Jarvis-Session", max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class Options(BaseModel):
    model_config = ConfigDict(extra="ignore")
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    seed: int | None = None
    num_predict: Annotated[int, Field(ge=-2, le=32768)] | None = None
    stop: list[str] | None = None
    top_k: Annotated[int, Field(ge=0, le=1000)] | None = None
    min_p: Annotated[float, Field(ge=0, le=1)] | None = None
    repeat_penalty: Annotated[float, Field(gt=0, le=10)] | None = None
    repeat_last_n: Annotated[int, Field(ge=-1, le=32768)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[dict] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: Annotated[str, Field(min_length=1, max_length=200)]
    messages: list[Message] = []
    stream: bool = True
    format: str | dict | None = None
    options: Options | None = None
    tools: list[dict] | None = None
    keep_alive: str | int | float | None = None


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: Annotated[str, Field(min_length=1, max_length=200)]
    prompt: str = ""
    system: str | None = None
    raw: bool = False
    stream: bool = True
    format: str | dict | None = None
    options: Options | None = None
    images: list[str] | None = None
    keep_alive: str | int | float | None = None


class ModelRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    name: Annotated[str, Field(min_length=1, max_length=500)] | None = None  # older clients say name
    stream: bool = True
    insecure: bool = False

    @property
    def key(self) -> str:
        key = self.model or self.name
        if not key:
            raise InvalidInput("model is required")
        return key


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: Annotated[str, Field(min_length=1, max_length=200)]
    input: str | Annotated[list[str], Field(min_length=1, max_length=256)] | None = None
    prompt: str | None = None  # the older /api/embeddings


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _options(options: Options | None, fmt: object) -> dict:
    options = options or Options()
    limit = options.num_predict if options.num_predict and options.num_predict > 0 else None
    return {
        "temperature": options.temperature,
        "top_p": options.top_p,
        "seed": options.seed,
        "max_tokens": limit,
        "stop": options.stop or None,
        "json_mode": fmt is not None and fmt != "",
        "sampling": {name: value for name in SAMPLING_FIELDS if (value := getattr(options, name)) is not None},
    }


def _statistics(message: ChatMessage, usage: Usage | None, started: float) -> dict:
    total = time.perf_counter() - started
    ttft = (message.ttft_ms or 0) / 1000
    duration = (message.duration_ms or total * 1000) / 1000
    return {
        "done_reason": FINISH_REASONS.get(message.finish_reason or "stop", "stop"),
        "total_duration": int(total * 1e9),
        "load_duration": 0,
        "prompt_eval_count": (usage.prompt_tokens if usage else None) or 0,
        "prompt_eval_duration": int(ttft * 1e9),
        "eval_count": (usage.completion_tokens if usage else None) or 0,
        "eval_duration": int(max(duration - ttft, 0) * 1e9),
    }


def _line(data: dict) -> bytes:
    return (json.dumps(data) + "\n").encode()


def _tool_calls(calls: list[dict] | None) -> list[dict] | None:
    return [{"function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls] if calls else None


async def _answer(reply: Reply, model: str, *, stream: bool, field: str) -> Response:
    """Stream (or collect) a reply as Ollama does: `field` is `message` for chat, `response` for generate."""
    started = time.perf_counter()

    def piece(text: str) -> dict:
        content = {"role": "assistant", "content": text} if field == "message" else text
        return {"model": model, "created_at": _now(), field: content, "done": False}

    def final(event: Finished) -> dict:
        data = {
            **piece("" if stream else event.message.content),
            "done": True,
            **_statistics(event.message, event.usage, started),
        }
        if field == "message" and event.tool_calls:
            data["message"]["tool_calls"] = _tool_calls(event.tool_calls)
        return data

    if not stream:
        _started, outcome = await run_to_end(reply)
        if isinstance(outcome, Failed):
            raise outcome.as_error()
        return JSONResponse(final(outcome))

    async def lines() -> AsyncIterator[bytes]:
        async for event in reply.events():
            if isinstance(event, Token):
                yield _line(piece(event.text))
            elif isinstance(event, Finished):
                yield _line(final(event))
            elif isinstance(event, Failed):
                yield _line({"error": event.error})
            elif isinstance(event, Started):
                continue

    return StreamingResponse(lines(), media_type=NDJSON)


@router.post("/chat")
async def chat(body: ChatRequest, services: ServicesDep, user: UserDep, session: SessionHeader = None) -> Response:
    if not body.messages:  # Ollama: an empty chat loads the model
        services.engines.route(body.model)
        return JSONResponse(
            {
                "model": body.model,
                "created_at": _now(),
                "message": {"role": "assistant", "content": ""},
                "done_reason": "load",
                "done": True,
            }
        )
    if any(m.images for m in body.messages):
        raise InvalidInput("images are not supported by this server's models")
    conversation = []
    for message in body.messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            item["tool_calls"] = [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {
                        "name": c.get("function", {}).get("name", ""),
                        "arguments": json.dumps(c.get("function", {}).get("arguments", {})),
                    },
                }
                for i, c in enumerate(message.tool_calls)
            ]
        conversation.append(item)
    text, conversation = split_conversation(conversation)
    reply = await services.chat.prepare(
        text,
        session_id=session,
        create_missing=True,
        model=body.model,
        conversation=conversation,
        persist=session is not None,
        user=user,
        client_tools=body.tools or None,
        **_options(body.options, body.format),
    )
    return await _answer(reply, body.model, stream=body.stream, field="message")


@router.post("/generate")
async def generate(
    body: GenerateRequest, services: ServicesDep, user: UserDep, session: SessionHeader = None
) -> Response:
    if body.images:
        raise InvalidInput("images are not supported by this server's models")
    if not body.prompt:  # Ollama: an empty prompt loads the model
        engine, name = services.engines.route(body.model)
        if engine is services.engines.local:
            await services.engines.local.load(name)
        return JSONResponse(
            {"model": body.model, "created_at": _now(), "response": "", "done": True, "done_reason": "load"}
        )
    if body.raw:
        return await _raw(body, services)
    conversation = ([{"role": "system", "content": body.system}] if body.system else []) + [
        {"role": "user", "content": body.prompt}
    ]
    reply = await services.chat.prepare(
        body.prompt,
        session_id=session,
        create_missing=True,
        model=body.model,
        conversation=conversation,
        persist=session is not None,
        user=user,
        **_options(body.options, body.format),
    )
    return await _answer(reply, body.model, stream=body.stream, field="response")


async def _raw(body: GenerateRequest, services: Services) -> Response:
    """`raw: true`: the prompt goes to the model as it is, with no chat template."""
    values = _options(body.options, body.format)
    values.pop("json_mode")
    values.update(values.pop("sampling"))
    engine, engine_model, options = await services.chat.prepare_completion(
        body.model, body.prompt, **{k: v for k, v in values.items() if v is not None}
    )
    started = time.perf_counter()

    async def pieces() -> AsyncIterator[dict]:
        async for chunk in engine.complete(engine_model, body.prompt, options):
            if chunk.text:
                yield {"model": body.model, "created_at": _now(), "response": chunk.text, "done": False}
            if chunk.finish_reason:
                usage = chunk.usage
                total = time.perf_counter() - started
                yield {
                    "model": body.model,
                    "created_at": _now(),
                    "response": "",
                    "done": True,
                    "done_reason": FINISH_REASONS.get(chunk.finish_reason, "stop"),
                    "total_duration": int(total * 1e9),
                    "load_duration": 0,
                    "prompt_eval_count": usage.prompt_tokens if usage else 0,
                    "eval_count": usage.completion_tokens if usage else 0,
                }

    if body.stream:

        async def lines() -> AsyncIterator[bytes]:
            async for item in pieces():
                yield _line(item)

        return StreamingResponse(lines(), media_type=NDJSON)
    collected = [item async for item in pieces()]
    final = collected[-1]
    final["response"] = "".join(item["response"] for item in collected)
    return JSONResponse(final)


def _details(manifest: Manifest) -> dict:
    params = manifest.parameter_count or 0
    size = f"{params / 1e9:.1f}B" if params >= 1e9 else f"{params / 1e6:.2f}M"
    return {
        "parent_model": "",
        "format": manifest.format,
        "family": manifest.family or "",
        "families": [manifest.family] if manifest.family else None,
        "parameter_size": size,
        "quantization_level": manifest.quantization or "",
    }


def _listing(manifest: Manifest, services: Services) -> dict:
    """An installed model as Ollama lists it, with its capabilities (a base model has only
    `completion`); reads the file's header once, so call it off the event loop."""
    return {
        "name": manifest.name,
        "model": manifest.name,
        "modified_at": manifest.installed_at,
        "size": manifest.size,
        "digest": manifest.digest.removeprefix("sha256-"),
        "details": _details(manifest),
        "capabilities": capabilities(services.store, manifest),
    }


@router.get("/tags")
async def tags(services: ServicesDep) -> dict:
    return {"models": await asyncio.to_thread(lambda: [_listing(m, services) for m in services.store.list()])}


@router.get("/ps")
async def ps(services: ServicesDep) -> dict:
    loaded = services.engines.local.loaded
    manifest = services.store.get(loaded.name) if loaded else None
    if manifest is None or loaded is None:
        return {"models": []}
    listing = await asyncio.to_thread(_listing, manifest, services)
    return {
        "models": [
            {
                **listing,
                "expires_at": "0001-01-01T00:00:00Z",
                "size_vram": 0,
                "context_length": loaded.n_ctx,
                "slots": services.engines.local.slots(),
            }
        ]
    }


@router.post("/show")
async def show(body: ModelRequest, services: ServicesDep) -> dict:
    manifest = _installed(services, body.key)
    found = await asyncio.to_thread(capabilities, services.store, manifest)
    template = await asyncio.to_thread(chat_template, services.store, manifest)
    info = {
        "general.architecture": manifest.family,
        "general.parameter_count": manifest.parameter_count,
        "general.quantization": manifest.quantization,
    }
    if manifest.family:
        info[f"{manifest.family}.context_length"] = manifest.context_length
    return {
        "modelfile": f"# Modelfile generated by JARVIS\nFROM {manifest.name}\n",
        "parameters": "\n".join(f"{key} {value}" for key, value in manifest.parameters.items()),
        # Ollama shows its Go template; ours is the GGUF's Jinja template (empty: a base model)
        "template": template,
        "details": _details(manifest),
        "model_info": info,
        "capabilities": found,
        "modified_at": manifest.installed_at,
    }


def _installed(services: Services, key: str) -> Manifest:
    try:
        return find_installed(services.store, key)
    except (ModelNotFound, InvalidInput) as exc:
        raise ModelNotFound(f"model '{key}' not found") from exc


@router.delete("/delete", dependencies=[AdminOnly])
async def delete(body: ModelRequest, services: ServicesDep) -> Response:
    from jarvis.api.routes.models import _delete

    _installed(services, body.key)
    await _delete(services, body.key)
    return Response(status_code=200)


@router.post("/pull", dependencies=[AdminOnly])
async def pull(body: ModelRequest, services: ServicesDep) -> Any:  # a StreamingResponse or the final status
    """Ollama's sequence: pulling manifest, pulling <digest> (total/completed), verifying sha256
    digest, writing manifest, success; `{"error": …}` when it fails."""
    job = await services.downloads.submit(body.key)
    if not body.stream:
        while job.active:
            await asyncio.sleep(0.2)
        if job.status != "completed":
            raise EngineError(job.error or f"pull {job.status}")
        return {"status": "success"}

    async def lines() -> AsyncIterator[bytes]:
        yield _line({"status": "pulling manifest"})
        remote = job.plan.files[0] if job.plan.files else None
        digest = remote.digest.replace("-", ":", 1) if remote and remote.digest else None
        label = f"pulling {digest.split(':')[1][:12]}" if digest else f"pulling {remote.file if remote else job.name}"
        async with services.bus.subscribe() as queue:
            snapshot = job.snapshot()
            verifying = False  # said once, after the layer's last line at 100 %, never followed by "pulling" again
            while True:
                if snapshot["status"] in ("downloading", "stalled", "retrying", "queued"):
                    verifying = False
                    yield _line(
                        {
                            "status": label,
                            "digest": digest or "",
                            "total": snapshot["total_bytes"] or 0,
                            "completed": snapshot["downloaded_bytes"],
                        }
                    )
                elif snapshot["status"] in ("verifying", "completed") and not verifying:
                    verifying = True
                    if remote:
                        yield _line(
                            {
                                "status": label,
                                "digest": digest or "",
                                "total": snapshot["total_bytes"] or 0,
                                "completed": snapshot["total_bytes"] or 0,
                            }
                        )
                    yield _line({"status": "verifying sha256 digest"})
                if snapshot["status"] == "completed":
                    yield _line({"status": "writing manifest"})
                    yield _line({"status": "success"})
                    return
                if snapshot["status"] not in ("queued", "downloading", "stalled", "retrying", "verifying"):
                    yield _line({"error": snapshot.get("error") or f"pull {snapshot['status']}"})
                    return
                while True:
                    event = await queue.get()
                    if event.type == "download.progress" and event.data.get("job_id") == job.id:
                        snapshot = event.data
                        break

    return StreamingResponse(lines(), media_type=NDJSON)


@router.post("/embed")
async def embed(body: EmbedRequest, services: ServicesDep) -> dict:
    texts = [body.input] if isinstance(body.input, str) else list(body.input or [])
    if not texts or any(not text for text in texts):
        raise InvalidInput("input must be a non-empty string or list of non-empty strings")
    started = time.perf_counter()
    engine, engine_model = await services.engines.check(body.model)
    vectors, tokens = await engine.embed(engine_model, texts)
    return {
        "model": body.model,
        "embeddings": vectors,
        "total_duration": int((time.perf_counter() - started) * 1e9),
        "load_duration": 0,
        "prompt_eval_count": tokens,
    }


@router.post("/embeddings")
async def embeddings(body: EmbedRequest, services: ServicesDep) -> dict:
    """The older single-text form: `{"model", "prompt"}` → `{"embedding": [...]}`."""
    if not body.prompt:
        raise InvalidInput("prompt must not be empty")
    engine, engine_model = await services.engines.check(body.model)
    vectors, _tokens = await engine.embed(engine_model, [body.prompt])
    return {"embedding": vectors[0]}


@router.get("/version")
async def version() -> dict:
    return {"version": __version__}
