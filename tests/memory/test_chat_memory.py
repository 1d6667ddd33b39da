"""Memory in the chat: relevant memories reach the prompt and the answer records which;
plain statements ("remember that …", "merk dir, dass …") are captured."""

from __future__ import annotations

from tests.support.clients import client


async def test_relevant_memories_are_used_and_recorded(server):
    async with client(server) as http:
        kept = (await http.post("/api/memory", json={"content": "The user's cat is called Mia", "kind": "fact"})).json()
        other = (
            await http.post("/api/memory", json={"content": "Quarterly taxes are due in April", "kind": "note"})
        ).json()
        first = (
            await http.post("/api/chat/messages", json={"message": "What is my cat called?", "max_tokens": 4})
        ).json()
        first_prompt = first["prompt_tokens"]
        assert kept["id"] in first["memory_ids"] and other["id"] not in first["memory_ids"]
        stored = (await http.get(f"/api/chat/sessions/{first['session_id']}")).json()["messages"][1]
        assert stored["memory_ids"] == first["memory_ids"]
        listed = {m["id"]: m for m in (await http.get("/api/memory", params={"limit": 200})).json()["memories"]}
        assert listed[kept["id"]]["use_count"] >= 1
        await http.delete(f"/api/memory/{kept['id']}")
        again = (
            await http.post("/api/chat/messages", json={"message": "What is my cat called?", "max_tokens": 4})
        ).json()
    assert again["memory_ids"] == [] or kept["id"] not in again["memory_ids"]
    assert again["prompt_tokens"] < first_prompt  # the memory was in the first prompt, not in this one


async def test_statements_are_captured_in_both_languages(server):
    async with client(server) as http:
        await http.post(
            "/api/chat/messages", json={"message": "Remember that my favourite colour is teal", "max_tokens": 2}
        )
        await http.post(
            "/api/chat/messages", json={"message": "Merk dir, dass mein Zug um 7 Uhr fährt", "max_tokens": 2}
        )
        found = (await http.post("/api/memory/search", json={"query": "favourite colour"})).json()["results"]
        zug = (await http.post("/api/memory/search", json={"query": "Zug"})).json()["results"]
    assert any("teal" in r["content"] for r in found)
    assert any("7 Uhr" in r["content"] for r in zug)


async def test_memory_commands(server):
    async with client(server) as http:
        kept = (
            await http.post("/api/chat/messages", json={"message": "/remember the wifi password is on the fridge"})
        ).json()
        assert kept["content"].startswith("Remembered (#")
        number = kept["content"].split("#", 1)[1].split(")", 1)[0]
        recalled = (await http.post("/api/chat/messages", json={"message": "/recall wifi"})).json()
        assert f"#{number}" in recalled["content"] and "fridge" in recalled["content"]
        forgot = (await http.post("/api/chat/messages", json={"message": f"/forget {number}"})).json()
        assert forgot["content"] == f"Forgot #{number}."
        assert (await http.get(f"/api/memory/{number}")).status_code == 404
