"""What the OpenAI- and Ollama-compatible routers share: their error shapes, applied by a
route class, and turning their messages into the chat service's conversation."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from jarvis.api.errors import describe_validation
from jarvis.errors import InvalidInput, JarvisError


def error_route(render: Callable[[int, str, str], Response]) -> type[APIRoute]:
    """A route class whose errors leave in another API's shape; `render(status, code, message)`."""

    class ErrorShapedRoute(APIRoute):
        def get_route_handler(self):
            handler = super().get_route_handler()

            async def shaped(request: Request) -> Response:
                try:
                    return await handler(request)
                except RequestValidationError as exc:
                    return render(400, "invalid_request", describe_validation(exc.errors()))
                except JarvisError as exc:
                    return render(exc.status_code, exc.code, exc.message)

            return shaped

    return ErrorShapedRoute


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


def text_of(content) -> str:
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
FINISH_REASONS = {"command": "stop", "stop": "stop", "length": "length", "tool_calls": "tool_calls", "repetition": "stop"}
