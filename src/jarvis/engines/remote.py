"""What the engines that talk to another server (Ollama, OpenAI-compatible) share: one HTTP
client, its failures as the service's errors, and no tokenizer of their own."""

from __future__ import annotations

from typing import Any

import httpx

from jarvis.engines.base import estimate_prompt_tokens
from jarvis.engines.http_errors import raise_for_status, unreachable


class RemoteEngine:
    name = "remote"

    def __init__(self, base_url: str, *, headers: dict | None = None, timeout: float = 600.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url, headers=headers or {}, timeout=httpx.Timeout(timeout, connect=5.0)
        )

    async def _call(self, method: str, path: str, *, model: str | None = None, **kwargs: Any) -> httpx.Response:
        """A request whose failure raises the service's error (EngineUnavailable when the
        server cannot be reached; see http_errors.raise_for_status for the answers). `model`
        is None for requests about no model."""
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise unreachable(self.name, self.base_url, exc) from exc
        await raise_for_status(response, engine=self.name, model=model)
        return response

    async def context_length(self, model: str) -> int | None:
        return None  # neither API tells

    async def tools_supported(self, model: str) -> bool:
        return True  # the server renders the tools, or says it cannot

    async def count_prompt_tokens(self, model: str, messages: list[dict]) -> int:
        return estimate_prompt_tokens(messages)

    async def close(self) -> None:
        await self._client.aclose()
