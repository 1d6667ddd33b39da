"""Translate a remote engine's HTTP failures into the service's errors."""

from __future__ import annotations

import json

import httpx

from jarvis.errors import EngineError, EngineRefused, EngineUnavailable, InvalidInput, ModelNotFound


def error_message(data: object) -> str:
    """The message inside a decoded error body: Ollama's `{"error": "..."}`, OpenAI's
    `{"error": {"message"}}`, vLLM's `{"object": "error", "message"}`, FastAPI's `{"detail"}`."""
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or error
    return str(error)[:300]


def error_text(body: bytes) -> str:
    """The message inside an error body, or the start of the body when it is not JSON."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")[:300]
    return error_message(data)


async def raise_for_status(response: httpx.Response, *, engine: str, model: str | None = None) -> None:
    """Raise the service's error for a failed answer; `model` is None for requests about no
    model (a listing), where a 404 means the URL is wrong rather than the model unknown.
    Raises ModelNotFound, InvalidInput, EngineRefused (429, 5xx: another server may answer),
    EngineError."""
    if response.status_code < 400:
        return
    message = error_text(await response.aread())
    if response.status_code == 404:
        if model is None:
            raise EngineError(f"{engine} has no {response.request.url.path} (is its base URL right?): {message}")
        raise ModelNotFound(f"{engine} has no model {model!r}: {message}")
    if response.status_code in (400, 422):
        raise InvalidInput(f"{engine} refused the request: {message}")
    error = EngineRefused if response.status_code == 429 or response.status_code >= 500 else EngineError
    raise error(f"{engine} answered {response.status_code}: {message}")


def unreachable(engine: str, url: str, exc: Exception) -> EngineUnavailable:
    return EngineUnavailable(f"{engine} at {url} is not reachable ({type(exc).__name__})")
