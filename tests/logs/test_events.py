"""One event stream: `GET /api/events` (SSE) and the `subscribe` frame of `/ws`."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from httpx_sse import aconnect_sse

from jarvis.api.routes.events import Selection
from jarvis.errors import InvalidInput
from jarvis.events import Event
from tests.logs.conftest import marker
from tests.support.clients import client, ws_session


def test_selection_by_type_and_prefix():
    some = Selection.parse("download,model.loaded", None)
    assert some.wants(Event("download.progress", {})) and some.wants(Event("download.error", {}))
    assert some.wants(Event("model.loaded", {})) and not some.wants(Event("model.unloaded", {}))
    assert not some.wants(Event("downloads.other", {}))  # a prefix ends at a dot
    assert not some.wants(Event("log.record", {"levelno": 50}))  # logs only with a level

    everything = Selection.parse(None, "warning")
    assert everything.wants(Event("plugin.changed", {})) and everything.wants(Event("memory.created", {}))
    assert everything.wants(Event("log.record", {"levelno": 30}))
    assert not everything.wants(Event("log.record", {"levelno": 20}))
    assert Selection.parse("*", None).types is None and Selection.parse("", None).types is None
    assert Selection.parse("log", None).log_level == logging.WARNING
    assert Selection.parse(["model"], "debug").describe() == {"events": ["model"], "log_level": "DEBUG"}


@pytest.mark.parametrize(
    "types, level",
    [
        ("download progress", None),
        ("a/b", None),
        (",".join(f"t{i}" for i in range(51)), None),
        (None, "LOUD"),
        ("x" * 101, None),
    ],
)
def test_bad_selections(types, level):
    with pytest.raises(InvalidInput):
        Selection.parse(types, level)


async def _collect(events, until, timeout: float = 60) -> list:
    seen = []

    async def run():
        async for event in events:
            seen.append((event.event, json.loads(event.data)))
            if until(seen):
                return

    await asyncio.wait_for(run(), timeout)
    return seen


async def test_sse_delivers_bus_events_and_log_records_at_the_level(server):
    word = marker()
    log = logging.getLogger(f"jarvis.tests.{word}")
    async with client(server) as http:
        params = {"types": "model,download", "log_level": "error"}
        async with aconnect_sse(http, "GET", "/api/events", params=params) as source:
            assert source.response.status_code == 200
            assert source.response.headers["content-type"].startswith("text/event-stream")
            events = source.aiter_sse()
            ready = await asyncio.wait_for(anext(events), 30)
            assert ready.event == "ready"
            assert json.loads(ready.data) == {"events": ["model", "download"], "log_level": "ERROR"}

            log.warning("below the level %s", word)
            log.error("at the level %s", word)
            activated = await http.post("/api/models/gemma3:270m/activate")
            assert activated.status_code == 200, activated.text

            def done(seen):
                types = {t for t, data in seen if t != "log.record" or word in data["message"]}
                return {"model.loaded", "log.record"} <= types

            seen = await _collect(events, done)
    assert all(t in ("model.loaded", "log.record") or t.startswith("download.") for t, _ in seen), seen
    assert all(data["levelno"] >= logging.ERROR for t, data in seen if t == "log.record")
    ours = [data for t, data in seen if t == "log.record" and word in data["message"]]
    assert [d["message"] for d in ours] == [f"at the level {word}"]
    assert ours[0]["level"] == "ERROR" and ours[0]["source"] == f"jarvis.tests.{word}" and ours[0]["id"]
    loaded = next(data for t, data in seen if t == "model.loaded")
    assert loaded["model"] == "gemma3:270m"


async def test_ws_subscription_runs_beside_chat(server):
    word = marker()
    log = logging.getLogger(f"jarvis.tests.{word}")
    async with ws_session(server) as (ws, _):
        await ws.send({"type": "unsubscribe"})
        assert (await ws.recv()) == {"type": "unsubscribed", "active": False}
        await ws.send({"type": "subscribe", "events": ["model.loaded"], "log_level": "error"})
        _, ack = await ws.until("subscribed")
        assert ack["events"] == ["model.loaded"] and ack["log_level"] == "ERROR"

        await ws.send({"type": "chat", "message": "Hello there", "stream": True, "temperature": 0, "max_tokens": 8})
        log.error("during the chat %s", word)
        frames, ended, got_event = [], False, False
        while not (ended and got_event):
            frame = await ws.recv()
            frames.append(frame)
            ended = ended or frame["type"] == "stream_end"
            got_event = got_event or (frame["type"] == "event" and word in frame["data"].get("message", ""))
        chat = [f for f in frames if f["type"] != "event"]
        assert chat[0]["type"] == "stream_start" and chat[-1]["type"] == "stream_end"
        chunks = [f for f in chat if f["type"] == "stream_chunk"]
        assert chat[1:-1] == chunks and chat[-1]["full_response"] == "".join(c["content"] for c in chunks)
        assert chat[-1]["status"] == "complete"
        event = next(f for f in frames if f["type"] == "event")
        assert event["event"] == "log.record" and event["data"]["level"] == "ERROR"

        # a bad subscribe is refused and changes nothing; the socket stays open
        await ws.send({"type": "subscribe", "log_level": "LOUD"})
        _, error = await ws.until("error")
        assert error["code"] == "invalid_request"
        await ws.send({"type": "subscribe", "events": "model"})  # not a list
        _, error = await ws.until("error")

        await ws.send({"type": "unsubscribe"})
        _, stopped = await ws.until("unsubscribed")
        assert stopped["active"] is True
        log.error("after unsubscribing %s", word)
        await asyncio.sleep(1.5)  # three flushes of the writer
        await ws.send({"type": "ping"})
        between, _ = await ws.until("pong")
        assert not [f for f in between if f["type"] == "event"]
