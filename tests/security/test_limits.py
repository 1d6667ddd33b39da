"""Configurable limits, each answered with a clear error: body size, WebSocket frame size,
connections per client, queue length."""

from __future__ import annotations

import httpx
from httpx_sse import aconnect_sse

from tests.support.clients import client, ws_session
from tests.support.live import LiveServer


async def test_limits(make_settings):
    server = LiveServer(
        make_settings(
            max_body_bytes=2048, max_ws_frame_bytes=4096, max_connections_per_client=3, max_queue=0, parallel=1
        )
    ).start()
    try:
        async with client(server) as http:
            big = await http.post(
                "/api/chat/messages",
                content=b'{"message": "' + b"x" * 4000 + b'"}',
                headers={"content-type": "application/json"},
            )
            assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"

            async def chunked():
                for _ in range(10):
                    yield b"x" * 1000

            streamed = await http.post(
                "/api/chat/messages", content=chunked(), headers={"content-type": "application/json"}
            )
            assert streamed.status_code == 413

        async with ws_session(server) as (ws, _):
            await ws.send({"type": "chat", "message": "y" * 5000})
            error = await ws.recv()
            assert error["type"] == "error" and error["code"] == "payload_too_large"
            await ws.send({"type": "chat", "message": "é" * 2500})  # 2,500 characters, 5,000 bytes
            error = await ws.recv()
            assert error["type"] == "error" and error["code"] == "payload_too_large"

        # queue: one slot, its answer generating, none may wait
        async with client(server) as http:
            async with aconnect_sse(
                http,
                "POST",
                "/api/chat/messages",
                json={"message": "Count", "stream": True, "max_tokens": 60, "temperature": 0},
            ) as source:
                async for event in source.aiter_sse():
                    if event.event == "token":  # the first answer is generating now
                        second = await http.post("/api/chat/messages", json={"message": "hi", "max_tokens": 4})
                        break
            assert second.status_code == 429 and second.json()["error"]["code"] == "too_many_requests"
            sessions = (await http.get("/api/chat/sessions")).json()["sessions"]
            assert all(s["title"] != "hi" for s in sessions)  # nothing stored for the refused one

        # connections: the fourth at once from one client is refused
        clients = [httpx.AsyncClient(base_url=server.url, limits=httpx.Limits(max_connections=1)) for _ in range(4)]
        try:
            sockets = [ws_session(server) for _ in range(3)]
            opened = [await s.__aenter__() for s in sockets]
            assert all(hello["type"] == "connection" for _ws, hello in opened)
            refused = await clients[3].get("/api/health")
            assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_connections"
            for s in sockets:
                await s.__aexit__(None, None, None)
        finally:
            for c in clients:
                await c.aclose()
    finally:
        server.stop()


async def test_plain_completions_keep_the_message_and_token_limits(make_settings):
    """`/v1/completions` and Ollama's raw generate skip the chat template, not the limits."""
    server = LiveServer(make_settings(max_message_chars=100, max_tokens_limit=3)).start()
    try:
        async with client(server) as http:
            long_prompt = "word " * 40
            openai = await http.post("/v1/completions", json={"model": "gemma3:270m", "prompt": long_prompt})
            # both APIs answer a client's mistake with 400, in their own error shapes
            assert openai.status_code == 400 and openai.json()["error"]["code"] == "payload_too_large"
            ollama = await http.post(
                "/api/generate", json={"model": "gemma3:270m", "prompt": long_prompt, "raw": True, "stream": False}
            )
            assert ollama.status_code == 400 and "the limit is 100" in ollama.json()["error"]
            capped = await http.post(
                "/v1/completions",
                json={"model": "gemma3:270m", "prompt": "Count: 1, 2,", "max_tokens": 50, "temperature": 0},
            )
            assert capped.json()["usage"]["completion_tokens"] <= 3
            raw = await http.post(
                "/api/generate",
                json={
                    "model": "gemma3:270m",
                    "prompt": "Count: 1, 2,",
                    "raw": True,
                    "stream": False,
                    "options": {"num_predict": 50},
                },
            )
            assert 0 < raw.json()["eval_count"] <= 3
    finally:
        server.stop()
