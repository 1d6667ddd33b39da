"""An Ollama server as an engine: `/api/chat` streamed as NDJSON, `/api/tags` for the list."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator

import httpx

from jarvis.engines.base import SAMPLING_FIELDS, Chunk, GenerationOptions, ModelInfo, Usage, tool_arguments
from jarvis.engines.http_errors import error_message, raise_for_status, unreachable
from jarvis.engines.remote import RemoteEngine
from jarvis.errors import EngineError

# Ollama's done_reason values map onto OpenAI-style finish reasons.
_FINISH = {"stop": "stop", "length": "length", "load": "stop", "unload": "stop"}


class OllamaEngine(RemoteEngine):
    name = "ollama"

    async def stream(
        self, model: str, messages: list[dict], options: GenerationOptions, tools: list[dict] | None = None
    ) -> AsyncGenerator[Chunk, None]:
        body = {"model": model, "messages": _to_ollama(messages), "stream": True, "options": _ollama_options(options)}
        if tools:
            body["tools"] = tools
        if options.json_mode:
            body["format"] = "json"
        calls: list[dict] = []
        try:
            async with self._client.stream("POST", "/api/chat", json=body) as response:
                await raise_for_status(response, engine=self.name, model=model)
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    data = _line_json(line)
                    if "error" in data:
                        raise EngineError(f"ollama: {error_message(data)}")
                    message = data.get("message") or {}
                    text = message.get("content") or ""
                    for call in message.get("tool_calls") or []:
                        function = call.get("function") or {}
                        calls.append(
                            {
                                "id": f"call_{len(calls)}",
                                "name": function.get("name", ""),
                                "arguments": function.get("arguments") or {},
                            }
                        )
                    if data.get("done"):
                        usage = Usage(data.get("prompt_eval_count"), data.get("eval_count"))
                        reason = "tool_calls" if calls else _FINISH.get(data.get("done_reason") or "stop", "stop")
                        yield Chunk(text=text, finish_reason=reason, usage=usage, tool_calls=calls or None)
                        return
                    if text:
                        yield Chunk(text=text)
        except httpx.TransportError as exc:
            raise unreachable(self.name, self.base_url, exc) from exc
        raise EngineError("ollama closed the stream before it was done")

    async def embed(self, model: str, texts: list[str]) -> tuple[list[list[float]], int]:
        data = (await self._call("POST", "/api/embed", model=model, json={"model": model, "input": texts})).json()
        return data.get("embeddings") or [], int(data.get("prompt_eval_count") or 0)

    async def list_models(self) -> list[ModelInfo]:
        response = await self._call("GET", "/api/tags")
        return [
            ModelInfo(name=item["name"], engine=self.name, details=item.get("details") or {})
            for item in response.json().get("models", [])
        ]


def _ollama_options(options: GenerationOptions) -> dict:
    mapped = {
        "temperature": options.temperature,
        "num_predict": options.max_tokens,
        "top_p": options.top_p,
        "seed": options.seed,
        "stop": options.stop or None,
        **{name: getattr(options, name) for name in SAMPLING_FIELDS},  # Ollama's own option names
    }
    return {key: value for key, value in mapped.items() if value is not None}


def _line_json(line: str) -> dict:
    try:
        parsed = json.loads(line)
    except ValueError as exc:
        raise EngineError(f"ollama sent a line that is not JSON: {line[:200]!r}") from exc
    if not isinstance(parsed, dict):
        raise EngineError(f"ollama sent a line that is not a JSON object: {line[:200]!r}")
    return parsed


def _to_ollama(messages: list[dict]) -> list[dict]:
    """OpenAI-style tool messages in Ollama's shape (arguments as objects, no call ids)."""
    converted = []
    for message in messages:
        if message.get("tool_calls"):
            calls = [
                {"function": {"name": c["function"]["name"], "arguments": tool_arguments(c["function"]["arguments"])}}
                for c in message["tool_calls"]
            ]
            converted.append({"role": "assistant", "content": message.get("content") or "", "tool_calls": calls})
        elif message["role"] == "tool":
            converted.append({"role": "tool", "content": message["content"]})
        else:
            converted.append(message)
    return converted
