"""With several users, sessions and messages belong to their user: another user's id answers
404 in every API (native, OpenAI, Ollama, WebSocket)."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.live import LiveServer

ALICE, BOB = "alice-key-123", "bob-key-4567"


@pytest.fixture(scope="module")
def team(tmp_path_factory, models_dir):
    from jarvis.config import Settings

    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text(f"alice:{ALICE}\nbob:{BOB}\n")
    settings = Settings.build(env_file=None, data_dir=tmp_path_factory.mktemp("team"), models_path=models_dir,
                              api_keys_file=keys, log_level="WARNING")
    server = LiveServer(settings).start()
    yield server
    server.stop()


def as_user(server, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


async def test_sessions_are_private(team):
    async with as_user(team, ALICE) as alice, as_user(team, BOB) as bob:
        mine = (await alice.post("/api/chat/messages", json={"message": "alice's secret", "max_tokens": 4})).json()
        sid = mine["session_id"]
        assert (await alice.get(f"/api/chat/sessions/{sid}")).status_code == 200
        # bob sees nothing of it, anywhere
        assert (await bob.get(f"/api/chat/sessions/{sid}")).status_code == 404
        assert (await bob.patch(f"/api/chat/sessions/{sid}", json={"title": "mine now"})).status_code == 404
        assert (await bob.delete(f"/api/chat/sessions/{sid}")).status_code == 404
        assert sid not in [s["id"] for s in (await bob.get("/api/chat/sessions")).json()["sessions"]]
        posted = await bob.post("/api/chat/messages", json={"sessionId": sid, "message": "let me in", "max_tokens": 4})
        assert posted.status_code == 404
        # the compat APIs with the session header
        body = {"model": "gemma3:270m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        assert (await bob.post("/v1/chat/completions", json=body, headers={"X-Jarvis-Session": sid})).status_code == 404
        ollama = {"model": "gemma3:270m", "messages": [{"role": "user", "content": "hi"}], "stream": False,
                  "options": {"num_predict": 4}}
        assert (await bob.post("/api/chat", json=ollama, headers={"X-Jarvis-Session": sid})).status_code == 404
        # alice's session is untouched
        messages = (await alice.get(f"/api/chat/sessions/{sid}")).json()["messages"]
        assert [m["content"] for m in messages][0] == "alice's secret" and len(messages) == 2


async def test_websocket_history_is_private(team):
    async with as_user(team, ALICE) as alice:
        sid = (await alice.post("/api/chat/messages", json={"message": "ws secret", "max_tokens": 4})).json()["session_id"]
    async with connect(team.ws_url, additional_headers={"Authorization": f"Bearer {BOB}"}) as ws:
        await ws.recv()
        await ws.send(f'{{"type": "history", "session_id": "{sid}"}}')
        answer = await ws.recv()
        assert '"error"' in answer and "session_not_found" in answer
        await ws.send(f'{{"type": "chat_message", "message": "hi", "sessionId": "{sid}"}}')
        assert "session_not_found" in await ws.recv()
