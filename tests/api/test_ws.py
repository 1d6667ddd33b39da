"""WebSocket `/ws`: both seed dialects, ping, history, cancel, error frames, disconnects."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.clients import LONG_ANSWER, client, wait_for_message_status, ws_session

GREEDY = {"temperature": 0, "max_tokens": 8}
LONG = {"temperature": 0, "max_tokens": 400}


async def test_greeting_and_ping(server):
    async with ws_session(server) as (ws, hello):
        assert hello["type"] == "connection" and hello["status"] == "connected"
        assert hello["session_id"] and hello["message"]
        await ws.send({"type": "ping"})
        assert (await ws.recv())["type"] == "pong"


async def test_chat_message_dialect(server):
    async with ws_session(server) as (ws, hello):
        await ws.send({"type": "chat_message", "message": "Hallo JARVIS", "sessionId": hello["session_id"], **GREEDY})
        reply = await ws.recv()
    assert reply["type"] == "chat_response"
    assert reply["sessionId"] == hello["session_id"]
    assert reply["messageId"] and reply["response"] and reply["timestamp"]


async def test_chat_streaming_dialect_and_history(server):
    async with ws_session(server) as (ws, hello):
        await ws.send({"type": "chat", "message": "Hello WebSocket", "stream": True, **GREEDY})
        start = await ws.recv()
        assert start["type"] == "stream_start" and start["model"] == "gemma3:270m"
        chunks, end = await ws.until("stream_end")
        assert chunks and all(c["type"] == "stream_chunk" and c["done"] is False for c in chunks)
        assert end["full_response"] == "".join(c["content"] for c in chunks)
        assert end["timestamp"] and end["status"] == "complete"

        await ws.send({"type": "history"})
        history = await ws.recv()
    assert history["type"] == "history" and history["session_id"] == hello["session_id"]
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
    assert history["messages"][1]["content"] == end["full_response"]


async def test_chat_non_streaming_and_history_of_another_session(server):
    async with client(server) as http:
        other = (await http.post("/api/chat/messages", json={"message": "elsewhere", **GREEDY})).json()
    async with ws_session(server) as (ws, _):
        await ws.send({"type": "chat", "message": "Hello", "stream": False, **GREEDY})
        response = await ws.recv()
        assert response["type"] == "response" and response["content"] and response["model"] == "gemma3:270m"
        await ws.send({"type": "history", "session_id": other["session_id"]})
        history = await ws.recv()
    assert [m["content"] for m in history["messages"]][0] == "elsewhere"


async def test_cancel_stops_the_answer_and_stores_it_cancelled(server):
    async with ws_session(server) as (ws, hello):
        await ws.send({"type": "chat", "message": LONG_ANSWER, "stream": True, **LONG})
        start = await ws.recv()
        await ws.until("stream_chunk")
        await ws.send({"type": "ping"})  # answered while the answer streams
        await ws.until("pong")
        await ws.send({"type": "cancel"})
        chunks, end = await ws.until("stream_end")
        assert end["status"] == "cancelled"
    async with client(server) as http:
        stored = await wait_for_message_status(http, hello["session_id"], start["message_id"], {"cancelled"})
    assert stored["content"] == end["full_response"]
    assert stored["completion_tokens"] < 400


async def test_second_chat_while_streaming_is_refused(server):
    async with ws_session(server) as (ws, _):
        await ws.send({"type": "chat", "message": "first", "stream": True, "temperature": 0, "max_tokens": 24})
        await ws.until("stream_start")
        await ws.send({"type": "chat", "message": "second", "stream": True, **GREEDY})
        before, error = await ws.until("error")
        assert error["code"] == "busy"
        _, end = await ws.until("stream_end")  # the first answer goes on
        assert end["status"] == "complete"


async def test_closing_the_socket_mid_answer_stores_partial(server):
    async with ws_session(server) as (ws, hello):
        await ws.send({"type": "chat", "message": LONG_ANSWER, "stream": True, **LONG})
        start = await ws.recv()
        await ws.until("stream_chunk")
    async with client(server) as http:
        stored = await wait_for_message_status(http, hello["session_id"], start["message_id"], {"disconnected"})
        assert stored["completion_tokens"] < 400
        # the engine is free again
        assert (await http.post("/api/chat/messages", json={"message": "next", **GREEDY})).json()[
            "status"
        ] == "complete"


@pytest.mark.parametrize(
    "frame, code",
    [
        ("this is not json", "invalid_request"),
        ("[1, 2, 3]", "invalid_request"),
        ({"message": "no type"}, "unknown_type"),
        ({"type": "dance"}, "unknown_type"),
        ({"type": "chat", "message": ""}, "invalid_request"),
        ({"type": "chat", "message": 42}, "invalid_request"),
        ({"type": "chat", "message": "hi", "temperature": 9}, "invalid_request"),
        ({"type": "chat", "message": "hi", "stream": "yes"}, "invalid_request"),
        ({"type": "chat", "message": "hi", "model": "no-such-model"}, "model_not_found"),
        ({"type": "chat_message", "message": "hi", "sessionId": "no-such-session"}, "session_not_found"),
        ({"type": "chat", "message": "x" * 1_000_001}, "payload_too_large"),
    ],
)
async def test_malformed_frames_get_error_frames_and_the_socket_stays_open(server, frame, code):
    async with ws_session(server) as (ws, hello):
        await ws.send(frame)
        error = await ws.recv()
        assert error["type"] == "error" and error["code"] == code and error["error"]
        await ws.send({"type": "ping"})
        assert (await ws.recv())["type"] == "pong"
        await ws.send({"type": "history"})
        assert (await ws.recv())["messages"] == []  # nothing was stored


async def test_binary_frame_is_an_error(server):
    async with ws_session(server) as (ws, _):
        await ws.send(b"\x00\x01")
        error = await ws.recv()
        assert error["type"] == "error"
        await ws.send({"type": "ping"})
        assert (await ws.recv())["type"] == "pong"


async def test_cancel_with_nothing_running(server):
    async with ws_session(server) as (ws, _):
        await ws.send({"type": "cancel"})
        assert await ws.recv() == {"type": "cancelled", "active": False}
        await asyncio.sleep(0)


async def test_cancel_right_after_chat_is_answered(server):
    async with ws_session(server) as (ws, _):
        await ws.send({"type": "chat", "message": LONG_ANSWER, "stream": True, "temperature": 0, "max_tokens": 400})
        await ws.send({"type": "cancel"})
        frames, last = await ws.until("stream_end", "cancelled")
        assert last["type"] == "cancelled" or last["status"] == "cancelled"
        await ws.send({"type": "ping"})
        assert (await ws.recv())["type"] == "pong"
