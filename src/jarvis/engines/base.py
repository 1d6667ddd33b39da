"""The engine interface every backend implements."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class GenerationOptions:
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    json_mode: bool = False  # constrain the answer to a JSON object where the engine can
    # further sampler settings (Ollama's option names); None: the model's or Ollama's default
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


SAMPLING_FIELDS = ("top_k", "min_p", "repeat_penalty", "repeat_last_n", "presence_penalty", "frequency_penalty")


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None  # prompt tokens the engine had cached (not evaluated again)


@dataclass(frozen=True)
class Chunk:
    """A piece of the answer. The last chunk of a stream carries `finish_reason` and `usage`."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    # tools the model wants called: [{"id", "name", "arguments": dict}]
    tool_calls: list[dict] | None = None
    # tools the model tried to call that were not offered (never run); `text` is then its call text
    refused_calls: list[str] | None = None
    # the answer waits for a free slot: its place in the queue (1: next); no text with it
    queued: int | None = None


@dataclass(frozen=True)
class ModelInfo:
    name: str
    engine: str
    context_length: int | None = None
    details: dict = field(default_factory=dict)


class Engine(Protocol):
    """A backend that turns chat messages into a stream of text.

    Closing the iterator returned by `stream` (aclose, or cancelling the task that
    iterates it) stops generation at the next token and frees the engine.
    """

    name: str

    def stream(
        self, model: str, messages: list[dict], options: GenerationOptions, tools: list[dict] | None = None
    ) -> AsyncGenerator[Chunk, None]:
        """`tools` are OpenAI-style function specs; engines that cannot call tools ignore them."""
        ...

    async def embed(self, model: str, texts: list[str]) -> tuple[list[list[float]], int]:
        """Embedding vectors of `texts`, and the prompt tokens they took."""
        ...

    async def tools_supported(self, model: str) -> bool:
        """Whether `model` can be offered tools (the local engine: its chat template renders them)."""
        ...

    async def list_models(self) -> list[ModelInfo]: ...

    async def context_length(self, model: str) -> int | None: ...

    async def count_prompt_tokens(self, model: str, messages: list[dict]) -> int: ...

    async def close(self) -> None: ...


@runtime_checkable
class CompletionEngine(Engine, Protocol):
    """An engine that also continues raw text (no chat template): the embedded one."""

    def complete(self, model: str, prompt: str, options: GenerationOptions) -> AsyncGenerator[Chunk, None]: ...


def estimate_prompt_tokens(messages: list[dict]) -> int:
    """A rough count for engines that cannot tokenize for us (about 4 characters a token)."""
    return sum(len(m["content"]) // 4 + 4 for m in messages)


def tool_arguments(value: object) -> dict:
    """A tool call's arguments as a dict: OpenAI sends a JSON string, Ollama an object; anything
    unreadable is no arguments."""
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value or "{}") if isinstance(value, str | bytes | None) else None
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
