"""Translate a remote engine's HTTP failures into the service's errors."""

from __future__ import annotations

import json

import httpx

from jarvis.errors import EngineError, EngineUnavailable, InvalidInput, ModelNotFound


def error_text(body: bytes) -> str:
    """The message inside an Ollama (`{"error": "..."}`) or OpenAI (`{"error": {"message"}}`) body."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")[:300]
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        error = error.get("message") or error
    return str(error)[:300]


async def raise_for_status(response: httpx.Response, *, engine: str, model: str) -> None:
    if response.status_code < 400:
        return
    message = error_text(await response.aread())
    if response.status_code == 404:
        raise ModelNotFound(f"{engine} has no model {model!r}: {message}")
    if response.status_code in (400, 422):
        raise InvalidInput(f"{engine} refused the request: {message}")
    raise EngineError(f"{engine} answered {response.status_code}: {message}")


def unreachable(engine: str, url: str, exc: Exception) -> EngineUnavailable:
    return EngineUnavailable(f"{engine} at {url} is not reachable ({type(exc).__name__})")
