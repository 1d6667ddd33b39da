"""A conversation longer than the model's context window keeps working: the oldest turns are dropped."""

from __future__ import annotations

from tests.support.clients import client
from tests.support.live import LiveServer


async def test_long_conversation_is_trimmed_to_the_context_window(make_settings):
    server = LiveServer(make_settings(n_ctx=512, default_max_tokens=16)).start()
    try:
        async with client(server) as http:
            session = (await http.post("/api/chat/sessions", json={"system_prompt": "You are JARVIS."})).json()
            prompts = []
            for index in range(6):
                text = f"Fact number {index}: " + "the quick brown fox jumps over the lazy dog " * 12
                answer = await http.post(
                    "/api/chat/messages",
                    json={"sessionId": session["id"], "message": text, "temperature": 0, "max_tokens": 16},
                )
                assert answer.status_code == 200, answer.text
                prompts.append(answer.json()["prompt_tokens"])
            too_long = await http.post(
                "/api/chat/messages", json={"sessionId": session["id"], "message": "word " * 2000, "max_tokens": 16}
            )
            stored = (await http.get(f"/api/chat/sessions/{session['id']}")).json()
    finally:
        server.stop()
    assert max(prompts) <= 512 - 16
    assert prompts[-1] < sum(prompts[:3])  # it stopped growing once history was trimmed
    assert too_long.status_code == 422 and "context window" in too_long.json()["error"]["message"]
    assert len(stored["messages"]) == 12  # every message is kept in storage, trimmed or not
