"""A stand-in Ollama server on loopback, speaking Ollama's documented wire format
(docs/api.md: `POST /api/chat` streamed as NDJSON or answered whole, `GET /api/tags`).

Ollama itself cannot run here, so this answers deterministically instead of running a
model, and records every chat request it receives so tests can check what was sent.
What each model does is chosen by the name it is served under:

- `echo`: answers "You said: <last user message>", one word a line; `options.num_predict`
  cuts it short with `done_reason: "length"`.
- `broken`: sends one piece, then an `{"error": ...}` line, as Ollama does when the runner
  fails mid-generation.
- `endless`: keeps sending pieces until the client goes away (capped, so a client that
  never closes still ends).
- `tools`: given `tools` and a user message "compute EXPR", calls the `calculator` tool with
  `{"expression": EXPR}` (a `tool_calls` message, as Ollama streams it); given the tool's
  result (a `tool` message), answers "The result is RESULT."
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from tests.support.live import ThreadedServer

BEHAVIOURS = ("echo", "broken", "endless", "tools")
_ENDLESS_CAP = 5000
NDJSON = "application/x-ndjson"


def full_name(name: str) -> str:
    """Ollama's model name with its default tag (`llama3.2` is `llama3.2:latest`)."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def echo_pieces(messages: list[dict]) -> list[str]:
    """What `echo` answers to `messages`, in the pieces it streams."""
    last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    return re.findall(r"\S+\s*", f"You said: {last}")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _words(messages: list[dict]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in messages)


class OllamaServer(ThreadedServer):
    """Serves `models` ({name: behaviour}) on a free loopback port, in a thread of the test process."""

    start_deadline = 30.0

    def __init__(self, models: dict[str, str] | None = None) -> None:
        models = models or {"echo": "echo"}
        unknown = set(models.values()) - set(BEHAVIOURS)
        if unknown:
            raise ValueError(f"unknown behaviours {unknown}; choose from {BEHAVIOURS}")
        self.models = {full_name(name): behaviour for name, behaviour in models.items()}
        self.requests: list[dict] = []  # the JSON body of every POST /api/chat, in order
        self.abandoned = threading.Event()  # set when a client leaves a stream before it finished
        app = Starlette(routes=[Route("/api/chat", self._chat, methods=["POST"]), Route("/api/tags", self._tags)])
        super().__init__(app, lifespan="off")

    @property
    def host(self) -> str:
        """What `OLLAMA_HOST` is set to for this server (Ollama's own `host:port` form)."""
        return f"127.0.0.1:{self.port}"

    # --- the API -------------------------------------------------------------------

    async def _tags(self, request: Request) -> JSONResponse:
        models = []
        for name, _behaviour in self.models.items():
            digest = hashlib.sha256(name.encode()).hexdigest()
            models.append(
                {
                    "name": name,
                    "model": name,
                    "modified_at": "2025-01-15T10:20:30.123456789Z",
                    "size": 291_548_160,
                    "digest": digest,
                    "details": {
                        "parent_model": "",
                        "format": "gguf",
                        "family": "gemma3",
                        "families": ["gemma3"],
                        "parameter_size": "268.10M",
                        "quantization_level": "Q4_K_M",
                    },
                }
            )
        return JSONResponse({"models": models})

    async def _chat(self, request: Request):
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "invalid request body"}, status_code=400)
        self.requests.append(body)
        model = body.get("model")
        if not model:
            return JSONResponse({"error": "model is required"}, status_code=400)
        behaviour = self.models.get(full_name(model))
        if behaviour is None:
            return JSONResponse({"error": f'model "{model}" not found, try pulling it first'}, status_code=404)
        messages = body.get("messages") or []
        limit = (body.get("options") or {}).get("num_predict")
        if body.get("stream", True) is False:
            pieces, reason = self._answer(behaviour, messages, limit)
            return JSONResponse(self._final(model, messages, "".join(pieces), len(pieces), reason))
        return StreamingResponse(self._stream(model, behaviour, messages, limit, body.get("tools")), media_type=NDJSON)

    def _answer(self, behaviour: str, messages: list[dict], limit: int | None) -> tuple[list[str], str]:
        pieces = echo_pieces(messages)
        if limit is not None and 0 <= limit < len(pieces):
            return pieces[:limit], "length"
        return pieces, "stop"

    async def _stream(self, model: str, behaviour: str, messages: list[dict], limit: int | None, tools=None):
        finished = False
        try:
            if behaviour == "tools":
                last = messages[-1] if messages else {}
                if last.get("role") == "tool":
                    yield self._line(self._piece(model, f"The result is {last.get('content')}."))
                    yield self._line(self._final(model, messages, "", 4, "stop"))
                else:
                    expression = str(last.get("content", "")).removeprefix("compute").strip()
                    names = [t["function"]["name"] for t in tools or []]
                    piece = self._piece(model, "")
                    if "calculator" in names:
                        call = {"function": {"name": "calculator", "arguments": {"expression": expression}}}
                        piece["message"]["tool_calls"] = [call]
                    else:
                        piece["message"]["content"] = "I have no calculator."
                    yield self._line(piece)
                    yield self._line(self._final(model, messages, "", 1, "stop"))
            elif behaviour == "broken":
                yield self._line(self._piece(model, "Partial"))
                yield self._line({"error": "an error was encountered while running the model: unexpected EOF"})
            elif behaviour == "endless":
                for count in range(_ENDLESS_CAP):
                    yield self._line(self._piece(model, f"word{count} "))
                    await asyncio.sleep(0.002)
                yield self._line(self._final(model, messages, "", _ENDLESS_CAP, "length"))
            else:
                pieces, reason = self._answer(behaviour, messages, limit)
                for piece in pieces:
                    yield self._line(self._piece(model, piece))
                yield self._line(self._final(model, messages, "", len(pieces), reason))
            finished = True
        finally:
            if not finished:
                self.abandoned.set()

    @staticmethod
    def _line(data: dict) -> bytes:
        return (json.dumps(data) + "\n").encode()

    @staticmethod
    def _piece(model: str, text: str) -> dict:
        return {"model": model, "created_at": _now(), "message": {"role": "assistant", "content": text}, "done": False}

    @staticmethod
    def _final(model: str, messages: list[dict], content: str, eval_count: int, reason: str) -> dict:
        return {
            "model": model,
            "created_at": _now(),
            "message": {"role": "assistant", "content": content},
            "done": True,
            "done_reason": reason,
            "total_duration": 4_883_583_458,
            "load_duration": 1_334_875,
            "prompt_eval_count": _words(messages),
            "prompt_eval_duration": 342_546_000,
            "eval_count": eval_count,
            "eval_duration": 4_535_599_000,
        }
