"""REST and SSE chat against a real server with the bundled model, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.support.clients import LONG_ANSWER, client, sse, wait_for_message_status

GREEDY = {"temperature": 0, "max_tokens": 8}


async def test_message_without_session_creates_one_and_stores_both_rows(server):
    async with client(server) as http:
        response = await http.post("/api/chat/messages", json={"message": "Hello there", **GREEDY})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["role"] == "assistant" and answer["status"] == "complete"
        assert answer["content"]
        assert answer["model"] == "gemma3:270m"
        assert answer["sessionId"] == answer["session_id"]
        assert answer["completion_tokens"] >= 1 and answer["prompt_tokens"] > 1
        assert answer["duration_ms"] > 0 and answer["ttft_ms"] is not None

        session = (await http.get(f"/api/chat/sessions/{answer['session_id']}")).json()
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"]
    assert session["messages"][0]["content"] == "Hello there"
    assert session["messages"][1] == {k: v for k, v in answer.items() if k not in ("sessionId", "user_message_id")}
    assert session["title"] == "Hello there"


async def test_session_crud_and_listing_newest_first(server):
    async with client(server) as http:
        first = (await http.post("/api/chat/sessions", json={"title": "first"})).json()
        second = (await http.post("/api/chat/sessions", json={"title": "second", "system_prompt": "Be brief."})).json()
        assert second["system_prompt"] == "Be brief."

        page = (await http.get("/api/chat/sessions", params={"limit": 2})).json()
        assert [s["id"] for s in page["sessions"]] == [second["id"], first["id"]]
        assert page["total"] >= 2 and page["limit"] == 2

        renamed = await http.patch(f"/api/chat/sessions/{first['id']}", json={"title": "renamed"})
        assert renamed.json()["title"] == "renamed"
        # a new message is activity: that session moves to the front
        await http.post("/api/chat/messages", json={"sessionId": first["id"], "message": "hi", **GREEDY})
        page = (await http.get("/api/chat/sessions", params={"limit": 2})).json()
        assert [s["id"] for s in page["sessions"]] == [first["id"], second["id"]]
        assert page["sessions"][0]["title"] == "renamed" and page["sessions"][0]["message_count"] == 2
        assert (await http.get("/api/chat/sessions", params={"limit": 1, "offset": 1})).json()["sessions"][0][
            "id"
        ] == second["id"]


async def test_delete_session_removes_it_and_its_messages(server):
    async with client(server) as http:
        answer = (await http.post("/api/chat/messages", json={"message": "to be deleted", **GREEDY})).json()
        assert (await http.delete(f"/api/chat/sessions/{answer['session_id']}")).json()["deleted"] is True
        gone = await http.get(f"/api/chat/sessions/{answer['session_id']}")
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == "session_not_found"


async def test_earlier_messages_are_sent_as_context(server):
    async with client(server) as http:
        first = (await http.post("/api/chat/messages", json={"message": "My name is Ada.", **GREEDY})).json()
        second = (
            await http.post(
                "/api/chat/messages",
                json={"sessionId": first["session_id"], "message": "My name is Ada.", **GREEDY},
            )
        ).json()
    # the same text again, now after a whole earlier exchange: the prompt grew by it
    assert second["prompt_tokens"] > first["prompt_tokens"] + first["completion_tokens"]


async def test_sse_stream_events_and_stored_answer(server):
    async with client(server) as http:
        events = await sse(http, "/api/chat/messages", {"message": "Tell me a story", "stream": True, **GREEDY})
        names = [name for name, _ in events]
        assert names[0] == "start" and names[-1] == "end"
        assert set(names[1:-1]) == {"token"}
        streamed = "".join(data["content"] for name, data in events if name == "token")
        end = events[-1][1]
        assert end["message"]["content"] == streamed
        assert end["message"]["status"] == "complete"
        assert end["usage"]["completion_tokens"] == len(names) - 2
        start = events[0][1]
        stored = await wait_for_message_status(http, start["session_id"], start["message_id"], {"complete"})
    assert stored["content"] == streamed


async def test_accept_header_selects_sse(server):
    async with client(server) as http:
        response = await http.post(
            "/api/chat/messages",
            json={"message": "hi", **GREEDY},
            headers={"Accept": "text/event-stream"},
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "event: end" in response.text


async def test_closing_sse_mid_answer_stops_and_stores_partial(server):
    async with client(server) as http:
        events = await sse(
            http,
            "/api/chat/messages",
            {"message": LONG_ANSWER, "stream": True, "temperature": 0, "max_tokens": 400},
            stop_after_tokens=3,
        )
        start = events[0][1]
        stored = await wait_for_message_status(http, start["session_id"], start["message_id"], {"disconnected"})
        assert stored["content"].startswith("".join(d["content"] for n, d in events if n == "token"))
        assert stored["completion_tokens"] < 400  # generation stopped long before its limit
        # the engine was freed: the next answer runs to the end
        after = await http.post("/api/chat/messages", json={"message": "and now?", **GREEDY})
    assert after.json()["status"] == "complete"


async def test_v1_chat_endpoints(server):
    async with client(server) as http:
        response = await http.post("/api/v1/chat/", json={"message": "Hello, how are you?", **GREEDY})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["response"] and body["model"] == "gemma3:270m" and body["status"] == "success"
        history = (await http.get(f"/api/chat/sessions/{body['session_id']}")).json()
        assert history["messages"][-1]["content"] == body["response"]

        health = (await http.get("/api/v1/chat/health")).json()
        assert health["status"] == "healthy"
        models = (await http.get("/api/v1/chat/models")).json()
        assert "gemma3:270m" in models["models"]

        events = await sse(http, "/api/v1/chat/", {"message": "Hi", "stream": True, **GREEDY})
    assert events[-1][0] == "end"


async def test_health_root_and_docs(server):
    async with client(server) as http:
        root = (await http.get("/")).json()
        assert root["name"] == "JARVIS Core" and root["links"]["docs"] == "/docs"
        assert (await http.get("/health")).json()["status"] == "ok"
        assert (await http.get("/docs")).status_code == 200
        assert (await http.get("/redoc")).status_code == 200
        schema = (await http.get("/openapi.json")).json()
    assert "/api/chat/messages" in schema["paths"] and "/api/v1/chat/" in schema["paths"]
