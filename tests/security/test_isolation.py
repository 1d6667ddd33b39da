"""With several users, sessions, messages and memories belong to their user: another user's id
answers 404 in every API (native, OpenAI, Ollama, WebSocket), searches and the chat's recall
find only the user's own memories, and events about them reach only their owner (and admins).
Managing the server (plugins, logs, model downloads and deletion) is for admins."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.clients import Socket, assert_error
from tests.support.live import LiveServer

ALICE, BOB = "alice-key-123", "bob-key-4567"  # alice is the admin


@pytest.fixture(scope="module")
def team(tmp_path_factory, models_dir):
    from jarvis.config import Settings

    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text(f"alice:{ALICE}\nbob:{BOB}\n")
    settings = Settings.build(
        env_file=None,
        data_dir=tmp_path_factory.mktemp("team"),
        models_path=models_dir,
        api_keys_file=keys,
        admin_users=["alice"],
        log_level="WARNING",
        default_model="gemma3:270m",
    )
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
        ollama = {
            "model": "gemma3:270m",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": False,
            "options": {"num_predict": 4},
        }
        assert (await bob.post("/api/chat", json=ollama, headers={"X-Jarvis-Session": sid})).status_code == 404
        # alice's session is untouched
        messages = (await alice.get(f"/api/chat/sessions/{sid}")).json()["messages"]
        assert [m["content"] for m in messages][0] == "alice's secret" and len(messages) == 2


async def test_websocket_history_is_private(team):
    async with as_user(team, ALICE) as alice:
        sid = (await alice.post("/api/chat/messages", json={"message": "ws secret", "max_tokens": 4})).json()[
            "session_id"
        ]
    async with connect(team.ws_url, additional_headers={"Authorization": f"Bearer {BOB}"}) as ws:
        await ws.recv()
        await ws.send(f'{{"type": "history", "session_id": "{sid}"}}')
        answer = await ws.recv()
        assert '"error"' in answer and "session_not_found" in answer
        await ws.send(f'{{"type": "chat_message", "message": "hi", "sessionId": "{sid}"}}')
        assert "session_not_found" in await ws.recv()


async def test_memories_are_private(team):
    async with as_user(team, ALICE) as alice, as_user(team, BOB) as bob:
        secret = (
            await alice.post("/api/memory", json={"content": "Alice's locker code is 4711", "pinned": True})
        ).json()
        mid = secret["id"]
        assert (await alice.get(f"/api/memory/{mid}")).status_code == 200
        assert_error(await bob.get(f"/api/memory/{mid}"), 404, "memory_not_found")
        assert_error(await bob.delete(f"/api/memory/{mid}"), 404, "memory_not_found")
        assert mid not in [m["id"] for m in (await bob.get("/api/memory")).json()["memories"]]
        assert (await bob.post("/api/memory/search", json={"query": "locker code"})).json()["results"] == []
        assert (await bob.get("/api/memory/stats")).json()["pinned"] == 0
        # the chat recalls only the asker's memories (alice's is pinned: it would go into every prompt of hers)
        asked = (
            await bob.post("/api/chat/messages", json={"message": "What is the locker code?", "max_tokens": 4})
        ).json()
        assert mid not in asked["memory_ids"]
        mine = (
            await alice.post("/api/chat/messages", json={"message": "What is the locker code?", "max_tokens": 4})
        ).json()
        assert mid in mine["memory_ids"]
        # the memory commands act on the asker's memories
        recalled = (await bob.post("/api/chat/messages", json={"message": "/recall locker"})).json()
        assert "4711" not in recalled["content"]
        forgot = (await bob.post("/api/chat/messages", json={"message": f"/forget {mid}"})).json()
        assert not forgot["content"].startswith("Forgot")
        # a statement is captured for whoever said it
        await bob.post("/api/chat/messages", json={"message": "Remember that my bike is green", "max_tokens": 2})
        assert (await bob.post("/api/memory/search", json={"query": "bike"})).json()["results"]
        assert (await alice.post("/api/memory/search", json={"query": "bike"})).json()["results"] == []
        assert (await alice.get(f"/api/memory/{mid}")).json()["content"] == "Alice's locker code is 4711"


async def test_memory_events_reach_only_their_owner(team):
    async with connect(team.ws_url, additional_headers={"Authorization": f"Bearer {BOB}"}) as raw:
        ws = Socket(raw)
        await ws.recv()
        await ws.send({"type": "subscribe", "events": ["memory"]})
        await ws.until("subscribed")
        async with as_user(team, ALICE) as alice, as_user(team, BOB) as bob:
            await alice.post("/api/memory", json={"content": "alice event secret"})
            await bob.post("/api/memory", json={"content": "bob's own note"})
        _, event = await ws.until("event")
        assert event["data"]["content"] == "bob's own note"  # alice's came first and was not sent
        # log records name every user's requests: not for bob
        await ws.send({"type": "subscribe", "events": ["log"], "log_level": "INFO"})
        _, refused = await ws.until("error")
        assert refused["code"] == "forbidden"
    async with as_user(team, BOB) as bob:
        assert_error(await bob.get("/api/events", params={"log_level": "INFO"}), 403, "forbidden")


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/api/plugins/calculator/disable", None),
        ("GET", "/api/logs", None),
        ("GET", "/api/logs/stats", None),
        ("POST", "/api/models/download", {"model": "hf.co/someone/model-GGUF:Q4_K_M"}),
        ("DELETE", "/api/models/gemma3:270m", None),
    ],
)
async def test_managing_the_server_is_for_admins(team, method, path, body):
    async with as_user(team, BOB) as bob:
        assert_error(await bob.request(method, path, json=body), 403, "forbidden")
    async with as_user(team, ALICE) as alice:
        if method == "GET":
            assert (await alice.get(path)).status_code == 200


async def test_ollama_pull_and_delete_are_for_admins(team):
    async with as_user(team, BOB) as bob:
        for method, path in (("POST", "/api/pull"), ("DELETE", "/api/delete")):
            response = await bob.request(method, path, json={"model": "gemma3:270m"})
            assert response.status_code == 403 and "admin" in response.json()["error"]
        assert (await bob.get("/api/models")).status_code == 200  # reading stays open
        assert (await bob.get("/api/tags")).status_code == 200
