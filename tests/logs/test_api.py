"""`/api/logs` and `/api/logs/stats` on a live server, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.logs.conftest import marker, wait_for_records
from tests.support.clients import client, ws_session


def assert_error(response, status: int = 422) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]


async def test_each_request_gets_one_access_record_with_its_id(server):
    async with client(server) as http:
        chosen = f"test-{marker()}"
        response = await http.get("/api/health", headers={"X-Request-ID": chosen})
        assert response.headers["x-request-id"] == chosen
        generated = (await http.get("/api/health", params={"probe": "1"})).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        refused = (await http.get("/api/health", headers={"X-Request-ID": "no good\tid"})).headers["x-request-id"]
        assert refused != "no good\tid"

        body = await wait_for_records(http, 1, request_id=chosen)
        await asyncio.sleep(1.2)  # two more flushes: a second record would have arrived
        body = await wait_for_records(http, 1, request_id=chosen)
        [record] = body["records"]
        assert record["source"] == "jarvis.access" and record["level"] == "INFO"
        assert record["request_id"] == chosen
        extra = record["extra"]
        assert (extra["method"], extra["path"], extra["status"]) == ("GET", "/api/health", 200)
        assert extra["duration_ms"] >= 0 and "GET /api/health 200" in record["message"]

        [probe] = (await wait_for_records(http, 1, request_id=generated))["records"]
        assert probe["extra"]["query"] == "probe=1"


async def test_a_websocket_gets_one_record_when_it_closes(server):
    async with ws_session(server) as (ws, hello):
        request_id = ws.ws.response.headers["x-request-id"]
        await ws.send({"type": "ping"})
        await ws.until("pong")
        async with client(server) as http:
            await asyncio.sleep(1.2)
            during = (await http.get("/api/logs", params={"request_id": request_id})).json()
    assert during["records"] == []  # written when the socket closes, not before
    async with client(server) as http:
        [record] = (await wait_for_records(http, 1, request_id=request_id))["records"]
    assert record["source"] == "jarvis.access"
    assert (record["extra"]["method"], record["extra"]["path"], record["extra"]["status"]) == ("WS", "/ws", 101)


async def test_filters_and_paging(server):
    word = marker()
    name = f"jarvis.tests.{word}"
    logging.getLogger(f"{name}.a").warning("first %s", word)
    for i in range(5):
        logging.getLogger(f"{name}.b").error("error %d of %s", i, word.upper())
    logging.getLogger(f"{name}.a").critical("last %s", word)
    async with client(server) as http:
        everything = await wait_for_records(http, 7, q=word, source=name)
        assert everything["total"] == 7
        ids = [r["id"] for r in everything["records"]]
        assert ids == sorted(ids, reverse=True)  # newest first
        assert everything["records"][0]["message"] == f"last {word}"

        pages, before = [], None
        while True:
            params = {"source": name, "limit": 3, **({"before_id": before} if before else {})}
            page = (await http.get("/api/logs", params=params)).json()
            pages.append([r["id"] for r in page["records"]])
            before = page["next_before_id"]
            if before is None:
                break
        assert pages == [ids[0:3], ids[3:6], ids[6:7]]
        by_offset = (await http.get("/api/logs", params={"source": name, "limit": 3, "offset": 3})).json()
        assert [r["id"] for r in by_offset["records"]] == ids[3:6] and by_offset["total"] == 7

        async def messages(**params) -> list[str]:
            # the access records of these very requests hold the word too: only the test's loggers
            params.setdefault("source", name)
            body = (await http.get("/api/logs", params={"q": word, **params})).json()
            return [r["message"] for r in body["records"]]

        assert len(await messages(level="error")) == 6  # ERROR and above
        assert await messages(level="CRITICAL") == [f"last {word}"]
        assert len(await messages(source=f"{name}.b")) == 5
        assert len(await messages(source=name)) == 7
        assert await messages(source="jarvis.nothing.here") == []
        assert len(await messages(q=word.upper())) == 7  # any case
        now = datetime.now(UTC)
        assert len(await messages(since=(now - timedelta(minutes=5)).isoformat())) == 7
        assert await messages(since=(now + timedelta(minutes=5)).isoformat()) == []
        assert await messages(until=(now - timedelta(minutes=5)).isoformat()) == []
        naive = (now + timedelta(minutes=5)).replace(tzinfo=None).isoformat()  # taken as UTC
        assert len(await messages(until=naive)) == 7
        assert await messages(q="%") == [] and await messages(q="_") == []  # no LIKE wildcards
        assert await messages(q=f"error 3 of {word}") == [f"error 3 of {word.upper()}"]


@pytest.mark.parametrize(
    "path, params",
    [
        ("/api/logs", {"level": "LOUD"}),
        ("/api/logs", {"level": "51"}),
        ("/api/logs", {"since": "yesterday"}),
        ("/api/logs", {"until": "2024-13-45T00:00:00"}),
        ("/api/logs", {"since": "2024-02-01T00:00:00Z", "until": "2024-01-01T00:00:00Z"}),
        ("/api/logs", {"q": "x" * 501}),
        ("/api/logs", {"limit": 0}),
        ("/api/logs", {"limit": 1001}),
        ("/api/logs", {"limit": "many"}),
        ("/api/logs", {"offset": -1}),
        ("/api/logs", {"before_id": 0}),
        ("/api/logs/stats", {"window": 59}),
        ("/api/logs/stats", {"window": 30 * 86400 + 1}),
        ("/api/logs/stats", {"window": "hour"}),
        ("/api/events", {"log_level": "LOUD"}),
        ("/api/events", {"types": "download progress"}),
        ("/api/events", {"types": "a,,b;c"}),
    ],
)
async def test_bad_filters_are_422(server, path, params):
    async with client(server) as http:
        error = assert_error(await http.get(path, params=params))
    assert error["code"] == "invalid_request"


async def test_stats_add_up(server):
    word = marker()
    name = f"jarvis.tests.{word}"
    logging.getLogger(name).error("stats error %s", word)
    logging.getLogger(name).critical("stats critical %s", word)
    logging.getLogger(name).warning("stats warning %s", word)
    async with client(server) as http:
        missing = await http.get(f"/api/{word}")
        assert missing.status_code == 404
        await wait_for_records(http, 3, q=word)
        await wait_for_records(http, 1, request_id=missing.headers["x-request-id"])
        stats = (await http.get("/api/logs/stats", params={"window": 3600})).json()
    assert stats["window_seconds"] == 3600
    assert stats["total"] == sum(stats["levels"].values())
    assert stats["total"] == sum(stats["sources"].values()) + stats["other_sources"]
    assert stats["sources"][name] == 3
    errors = stats["levels"].get("ERROR", 0) + stats["levels"].get("CRITICAL", 0)
    assert stats["errors"] == errors >= 2
    assert stats["error_rate"] == pytest.approx(errors / stats["total"], abs=1e-6)
    access = stats["access"]
    assert access["total"] == sum(access["status"].values())
    assert access["status"]["4xx"] >= 1 and access["status"]["2xx"] >= 1
    assert stats["access"]["total"] <= stats["sources"].get("jarvis.access", 0) + stats["other_sources"]
    assert isinstance(stats["dropped"], int) and stats["dropped"] >= 0
    assert stats["stored"] >= stats["total"]
