"""Any OpenAI-compatible server as an engine: `/chat/completions` streamed as SSE."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator

import httpx
from httpx_sse import SSEError, aconnect_sse

from jarvis.engines.base import Chunk, GenerationOptions, ModelInfo, Usage, tool_arguments
from jarvis.engines.http_errors import error_message, raise_for_status, unreachable
from jarvis.engines.remote import RemoteEngine
from jarvis.errors import EngineError


class OpenAIEngine(RemoteEngine):
    name = "openai"

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 600.0) -> None:
        super().__init__(base_url, headers={"Authorization": f"Bearer {api_key}"} if api_key else None, timeout=timeout)

    async def stream(
        self, model: str, messages: list[dict], options: GenerationOptions, tools: list[dict] | None = None
    ) -> AsyncGenerator[Chunk, None]:
        body = {"model": model, "messages": messages, "stream": True, **_openai_options(options)}
        if tools:
            body["tools"] = tools
        if options.json_mode:
            body["response_format"] = {"type": "json_object"}
        calls: dict[int, dict] = {}  # tool calls arrive in pieces, keyed by index
        finish_reason: str | None = None
        usage: Usage | None = None
        done = False
        try:
            async with aconnect_sse(self._client, "POST", "/chat/completions", json=body) as source:
                await raise_for_status(source.response, engine=self.name, model=model)
                async for event in source.aiter_sse():
                    if event.data.strip() == "[DONE]":
                        done = True
                        break
                    data = _event_json(event.data)
                    if "error" in data:
                        raise EngineError(f"openai: {error_message(data)}")
                    if data.get("usage"):
                        usage = Usage(data["usage"].get("prompt_tokens"), data["usage"].get("completion_tokens"))
                    for choice in data.get("choices") or []:
                        delta = choice.get("delta") or {}
                        for piece in delta.get("tool_calls") or []:
                            call = calls.setdefault(
                                piece.get("index", len(calls)), {"id": "", "name": "", "arguments": ""}
                            )
                            call["id"] = piece.get("id") or call["id"]
                            function = piece.get("function") or {}
                            call["name"] += function.get("name") or ""
                            call["arguments"] += function.get("arguments") or ""
                        text = delta.get("content") or ""
                        finish_reason = choice.get("finish_reason") or finish_reason
                        if text:
                            yield Chunk(text=text)
        except httpx.TransportError as exc:
            raise unreachable(self.name, self.base_url, exc) from exc
        except SSEError as exc:
            raise EngineError(f"openai answered something other than an event stream: {exc}") from exc
        if not done and finish_reason is None:
            # llama-cpp-python's server, for one, ends the stream this way when generation
            # fails after it has answered 200 (a prompt longer than its context, say).
            raise EngineError("openai closed the stream before it was done")
        tool_calls = [
            {"id": c["id"] or f"call_{i}", "name": c["name"], "arguments": tool_arguments(c["arguments"])}
            for i, c in sorted(calls.items())
        ]
        yield Chunk(finish_reason=finish_reason or "stop", usage=usage, tool_calls=tool_calls or None)

    async def embed(self, model: str, texts: list[str]) -> tuple[list[list[float]], int]:
        data = (await self._call("POST", "/embeddings", model=model, json={"model": model, "input": texts})).json()
        vectors = [item["embedding"] for item in sorted(data.get("data", []), key=lambda item: item.get("index", 0))]
        return vectors, int((data.get("usage") or {}).get("prompt_tokens") or 0)

    async def list_models(self) -> list[ModelInfo]:
        response = await self._call("GET", "/models")
        return [ModelInfo(name=item["id"], engine=self.name) for item in response.json().get("data", [])]


def _openai_options(options: GenerationOptions) -> dict:
    mapped = {
        "temperature": options.temperature,
        "max_tokens": options.max_tokens,
        "top_p": options.top_p,
        "seed": options.seed,
        "stop": options.stop or None,
        # OpenAI's own penalties; top_k and repeat_penalty are not OpenAI's and are left out
        "presence_penalty": options.presence_penalty,
        "frequency_penalty": options.frequency_penalty,
    }
    return {key: value for key, value in mapped.items() if value is not None}


def _event_json(data: str) -> dict:
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        raise EngineError(f"openai sent an event that is not JSON: {data[:200]!r}") from exc
    if not isinstance(parsed, dict):
        raise EngineError(f"openai sent an event that is not a JSON object: {data[:200]!r}")
    return parsed
