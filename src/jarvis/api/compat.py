"""What the OpenAI- and Ollama-compatible routers share: a route class that reads bodies as
JSON and answers errors in the other API's shape, and turning their messages into the chat
service's conversation."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from jarvis.api.errors import describe_validation
from jarvis.errors import InvalidInput, JarvisError


def compat_route(render: Callable[[int, str, str], Response]) -> type[APIRoute]:
    """A route class for another API: the body is JSON whatever its Content-Type, and errors
    leave in that API's shape, `render(status, code, message)`."""

    class CompatRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def shaped(request: Request) -> Response:
                try:
                    return await handler(_declared_json(request))
                except RequestValidationError as exc:
                    return render(400, "invalid_request", _describe(exc.errors()))
                except HTTPException as exc:  # a body FastAPI could not read, e.g. not UTF-8
                    return render(
                        exc.status_code, "invalid_request" if exc.status_code == 400 else "http_error", str(exc.detail)
                    )
                except JarvisError as exc:
                    return render(exc.status_code, exc.code, exc.message)

            return shaped

    return CompatRoute


def _declared_json(request: Request) -> Request:
    """The request with its body declared as JSON. FastAPI parses a body only when Content-Type
    says JSON; Ollama and llama-server parse it whatever it says, and their documented
    `curl URL -d '{…}'` sends application/x-www-form-urlencoded. The scope is copied, so the
    middleware around the app still sees the header the client sent."""
    headers = [(name, value) for name, value in request.scope["headers"] if name != b"content-type"]
    return Request({**request.scope, "headers": [*headers, (b"content-type", b"application/json")]}, request.receive)


def _describe(errors: Sequence[Any]) -> str:
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return f"the body is not valid JSON: {first['ctx']['error']} at character {first['loc'][-1]}"
    return describe_validation(errors)


def openai_error(status: int, code: str, message: str) -> JSONResponse:
    # OpenAI answers every client mistake with 400 invalid_request_error (404 for a model).
    if status in (413, 422):
        status = 400
    kind = "invalid_request_error" if status < 500 else "server_error"
    if code == "model_not_found":
        kind = "invalid_request_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status)


def ollama_error(status: int, code: str, message: str) -> JSONResponse:
    if status in (413, 422):
        status = 400
    return JSONResponse({"error": message}, status_code=status)


def text_of(content: str | list | None) -> str:
    """Message content as text: a string, or OpenAI's list of parts (text parts only)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        else:
            raise InvalidInput(f"content of type {kind!r} is not supported; send text")
    return "".join(texts)


def split_conversation(messages: list[dict]) -> tuple[str, list[dict]]:
    """The new user message and the whole conversation (ending with it). Raises InvalidInput."""
    if not messages:
        raise InvalidInput("messages must not be empty")
    if messages[-1]["role"] not in ("user", "tool"):
        raise InvalidInput("the last message must come from the user (or be a tool result)")
    return messages[-1]["content"], messages


# Ours -> OpenAI's and Ollama's: a loop cut short (`repetition`) ends as a plain stop there.
FINISH_REASONS = {
    "command": "stop",
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "repetition": "stop",
}
