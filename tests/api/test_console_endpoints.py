"""Endpoints the web console needed: who am I, free disk, session search, changing a session's
model and system prompt, and rewinding a session (regenerate, edit and resend)."""

from __future__ import annotations

import httpx
import pytest

from tests.web.conftest import console_server


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir):
    live = console_server(tmp_path_factory, models_dir, load_on_start=False)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, models_dir):
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text("alice:alice-key-12345\nbob:bob-key-1234567\n")
    live = console_server(
        tmp_path_factory, models_dir, load_on_start=False, api_keys_file=str(keys), admin_users=["alice"]
    )
    yield live
    live.stop()


def test_me_without_and_with_keys(server, keyed):
    assert httpx.get(f"{server.url}/api/me").json() == {"user": "default", "admin": True, "keys": False}
    assert httpx.get(f"{keyed.url}/api/me").status_code == 401
    bob = httpx.get(f"{keyed.url}/api/me", headers={"Authorization": "Bearer bob-key-1234567"}).json()
    assert bob == {"user": "bob", "admin": False, "keys": True}
    alice = httpx.get(f"{keyed.url}/api/me", headers={"Authorization": "Bearer alice-key-12345"}).json()
    assert alice["admin"] is True


def test_disk(server):
    disk = httpx.get(f"{server.url}/api/models/disk").json()
    assert 0 < disk["free_bytes"] <= disk["total_bytes"]
    assert disk["models_bytes"] > 700_000_000  # the two bundled models
    assert disk["reserve_bytes"] == 0 or disk["reserve_bytes"] % (1024 * 1024) == 0


def test_search_sessions_by_title_and_message_text(server):
    url = f"{server.url}/api/chat"
    a = httpx.post(f"{url}/sessions", json={"title": "Holiday 100% plans"}).json()
    b = httpx.post(f"{url}/sessions", json={"title": "Groceries"}).json()
    httpx.post(f"{url}/messages", json={"sessionId": b["id"], "message": "/calc 7*6"})
    found = lambda q: {s["id"] for s in httpx.get(f"{url}/sessions", params={"q": q}).json()["sessions"]}  # noqa: E731
    assert found("holiday") == {a["id"]}
    assert found("7*6") == {b["id"]}  # the text of a message
    assert found("100%") == {a["id"]}  # % and _ are literal
    assert found("_") == set()
    assert found("nothing like this") == set()


def test_patch_changes_model_and_system_prompt(server):
    url = f"{server.url}/api/chat/sessions"
    session = httpx.post(url, json={"title": "x"}).json()
    changed = httpx.patch(
        f"{url}/{session['id']}", json={"model": "qwen2.5-coder:0.5b", "system_prompt": "Be brief."}
    ).json()
    assert (changed["title"], changed["model"], changed["system_prompt"]) == ("x", "qwen2.5-coder:0.5b", "Be brief.")
    cleared = httpx.patch(f"{url}/{session['id']}", json={"system_prompt": ""}).json()
    assert cleared["system_prompt"] is None and cleared["model"] == "qwen2.5-coder:0.5b"
    assert httpx.patch(f"{url}/{session['id']}", json={}).status_code == 422
    unknown = httpx.patch(f"{url}/{session['id']}", json={"model": "no-such-model"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"


def test_rewind_deletes_a_message_and_what_followed(server):
    url = f"{server.url}/api/chat"
    session = httpx.post(f"{url}/sessions", json={}).json()
    for text in ("/calc 1+1", "/calc 2+2"):
        httpx.post(f"{url}/messages", json={"sessionId": session["id"], "message": text})
    messages = httpx.get(f"{url}/sessions/{session['id']}").json()["messages"]
    assert len(messages) == 4
    rewound = httpx.delete(f"{url}/sessions/{session['id']}/messages/{messages[2]['id']}").json()
    assert rewound == {"id": session["id"], "deleted": [messages[2]["id"], messages[3]["id"]]}
    left = httpx.get(f"{url}/sessions/{session['id']}").json()["messages"]
    assert [m["id"] for m in left] == [messages[0]["id"], messages[1]["id"]]
    gone = httpx.delete(f"{url}/sessions/{session['id']}/messages/{messages[3]['id']}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def test_rewind_and_patch_are_the_owners_only(keyed):
    alice = {"Authorization": "Bearer alice-key-12345"}
    bob = {"Authorization": "Bearer bob-key-1234567"}
    url = f"{keyed.url}/api/chat"
    session = httpx.post(f"{url}/sessions", json={}, headers=alice).json()
    httpx.post(f"{url}/messages", json={"sessionId": session["id"], "message": "/calc 1+1"}, headers=alice)
    first = httpx.get(f"{url}/sessions/{session['id']}", headers=alice).json()["messages"][0]
    assert httpx.delete(f"{url}/sessions/{session['id']}/messages/{first['id']}", headers=bob).status_code == 404
    assert httpx.patch(f"{url}/sessions/{session['id']}", json={"system_prompt": "x"}, headers=bob).status_code == 404
    assert httpx.get(f"{url}/sessions", params={"q": "1+1"}, headers=bob).json()["sessions"] == []
