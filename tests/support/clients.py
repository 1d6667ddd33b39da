"""Small client helpers for the tests: SSE over httpx, JSON frames over websockets."""

from __future__ import annotations

import asyncio
import json

import httpx
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect

TIMEOUT = httpx.Timeout(120.0)

# A message the bundled base model answers at length (it echoes the count, about 700 tokens),
# for tests that stop an answer midway: a short question ends within a few tokens.
LONG_ANSWER = "Count to a thousand: " + " ".join(map(str, range(1, 400)))

# A tool as OpenAI and Ollama clients offer it.
CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression exactly.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    },
}


def client(server) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT)


async def sse(http: httpx.AsyncClient, path: str, body: dict, *, stop_after_tokens: int | None = None) -> list:
    """POST and collect `(event, data)` pairs; with `stop_after_tokens`, hang up after that many tokens."""
    events = []
    tokens = 0
    async with aconnect_sse(http, "POST", path, json=body) as source:
        assert source.response.status_code == 200, await source.response.aread()
        async for event in source.aiter_sse():
            events.append((event.event, json.loads(event.data)))
            if event.event == "token":
                tokens += 1
                if stop_after_tokens is not None and tokens >= stop_after_tokens:
                    break
    return events


class Socket:
    """A JSON-speaking WebSocket client."""

    def __init__(self, ws) -> None:
        self.ws = ws

    async def send(self, frame) -> None:
        await self.ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    async def recv(self) -> dict:
        return json.loads(await asyncio.wait_for(self.ws.recv(), 120))

    async def until(self, *types: str) -> tuple[list[dict], dict]:
        """Frames received up to and including the first one whose type is in `types`."""
        seen = []
        while True:
            frame = await self.recv()
            if frame["type"] in types:
                return seen, frame
            seen.append(frame)


class ws_session:
    """`async with ws_session(server) as (socket, hello):` connects and reads the greeting."""

    def __init__(self, server) -> None:
        self.server = server

    async def __aenter__(self) -> tuple[Socket, dict]:
        self._cm = connect(self.server.ws_url, max_size=None)
        self.socket = Socket(await self._cm.__aenter__())
        return self.socket, await self.socket.recv()

    async def __aexit__(self, *exc) -> None:
        await self._cm.__aexit__(*exc)


async def wait_for_message_status(
    http: httpx.AsyncClient, session_id: str, message_id: str, statuses: set[str]
) -> dict:
    """Poll the stored session until the message reaches one of `statuses` (bounded)."""
    for _ in range(600):
        body = (await http.get(f"/api/chat/sessions/{session_id}")).json()
        for message in body.get("messages", []):
            if message["id"] == message_id and message["status"] in statuses:
                return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"message {message_id} never reached {statuses}")


def assert_error(response, status: int, code: str | None = None) -> dict:
    """A 4xx/5xx in the project's error format, with no stack trace; returns its `error`."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    assert "Traceback" not in response.text
    return body["error"]
