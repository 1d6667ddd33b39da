"""Plugins through the API and the chat: built-ins, enable/disable that survives a restart,
and a third-party package installed (offline, with pip) from the tests' own files."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.clients import client, ws_session
from tests.support.live import LiveServer

FIXTURES = Path(__file__).parents[1] / "fixtures"


async def say(http, text: str, **extra) -> dict:
    response = await http.post("/api/chat/messages", json={"message": text, "max_tokens": 8, "temperature": 0, **extra})
    assert response.status_code == 200, response.text
    return response.json()


async def test_builtins_are_listed(server):
    async with client(server) as http:
        plugins = {p["id"]: p for p in (await http.get("/api/plugins")).json()["plugins"]}
    assert {"datetime", "calculator", "sysinfo", "memory"} <= set(plugins)
    calc = plugins["calculator"]
    assert calc["source"] == "builtin" and calc["enabled"] is True and calc["version"]
    assert "commands" in calc["capabilities"] and "tools" in calc["capabilities"]
    assert calc["name"] == "Calculator" and calc["description"] and calc["last_error"] is None


@pytest.mark.parametrize(
    "command, expected",
    [
        ("/calc 2*(3+4)", "= 14"),
        ("/calc 1/0", "division by zero"),
        ("/calc __import__('os')", "not allowed"),
        ("/time", "It is"),
        ("/date", "Today is"),
        ("/sysinfo", "CPU:"),
        ("/help", "/calc"),
        ("/nope", "Unknown command /nope"),
    ],
)
async def test_commands_answer_without_the_model(server, command, expected):
    async with client(server) as http:
        answer = await say(http, command)
        session = (await http.get(f"/api/chat/sessions/{answer['session_id']}")).json()
    assert expected in answer["content"]
    assert answer["status"] == "complete" and answer["finish_reason"] == "command"
    assert [m["content"] for m in session["messages"]] == [command, answer["content"]]


async def test_commands_work_over_websocket(server):
    async with ws_session(server) as (ws, _):
        await ws.send({"type": "chat", "message": "/calc 6*7", "stream": True})
        _, end = await ws.until("stream_end")
    assert end["full_response"] == "6*7 = 42"


async def test_disable_takes_effect_at_once_and_survives_restart(make_settings):
    settings = make_settings()
    server = LiveServer(settings).start()
    try:
        async with client(server) as http:
            first = await http.post("/api/plugins/calculator/disable")
            assert first.json()["enabled"] is False and first.json()["changed"] is True
            assert (await http.post("/api/plugins/calculator/disable")).json()["changed"] is False
            assert "Unknown command /calc" in (await say(http, "/calc 1+1"))["content"]
    finally:
        server.stop()
    server = LiveServer(settings).start()
    try:
        async with client(server) as http:
            plugins = {p["id"]: p for p in (await http.get("/api/plugins")).json()["plugins"]}
            assert plugins["calculator"]["enabled"] is False
            assert (await http.post("/api/plugins/calculator/enable")).json()["enabled"] is True
            assert (await say(http, "/calc 1+1"))["content"] == "1+1 = 2"
            missing = await http.post("/api/plugins/no-such-plugin/enable")
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    finally:
        server.stop()


@pytest.fixture
def installed_plugins(tmp_path, monkeypatch):
    """pip-install the two fixture packages into a folder on sys.path, as a user's venv would have them."""
    target = tmp_path / "site"
    for name in ("jarvis-hello-plugin", "jarvis-broken-plugin"):
        source = tmp_path / name
        shutil.copytree(FIXTURES / name, source)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "--target",
                str(target),
                str(source),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    monkeypatch.syspath_prepend(str(target))
    yield target
    sys.modules.pop("jarvis_hello", None)


async def test_third_party_plugin_is_discovered_used_isolated_and_disabled(installed_plugins, make_settings):
    server = LiveServer(make_settings()).start()
    try:
        async with client(server) as http:
            plugins = {p["id"]: p for p in (await http.get("/api/plugins")).json()["plugins"]}
            hello, broken = plugins["hello"], plugins["broken"]
            assert hello["source"] == "package" and hello["version"] == "1.2.3" and hello["enabled"]
            assert set(hello["capabilities"]) == {"commands", "before_message", "after_answer"}
            assert broken["loaded"] is False and broken["enabled"] is False and "import failed" in broken["last_error"]
            assert (await http.post("/api/plugins/broken/enable")).status_code == 409

            greeted = await say(http, "/hello Ada")
            assert greeted["content"].startswith("Hello, Ada!")

            # a model answer runs the hooks; the failing after-answer hook is isolated and reported
            answer = await say(http, "I like pineapple")
            assert answer["status"] == "complete"
            session = (await http.get(f"/api/chat/sessions/{answer['session_id']}")).json()
            assert session["messages"][0]["content"] == "I like pineapple"  # stored as the user wrote it
            for _ in range(100):
                hello = {p["id"]: p for p in (await http.get("/api/plugins")).json()["plugins"]}["hello"]
                if hello["last_error"]:
                    break
                await asyncio.sleep(0.05)
            assert "always fails" in hello["last_error"]

            assert (await http.post("/api/plugins/hello/disable")).json()["enabled"] is False
            assert "Unknown command /hello" in (await say(http, "/hello Ada"))["content"]
    finally:
        server.stop()
