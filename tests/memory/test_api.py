"""`/api/memory` on a live server, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.support.clients import assert_error, client


async def _add(http, content: str, **fields) -> dict:
    response = await http.post("/api/memory", json={"content": content, **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def test_add_list_search_delete(server):
    async with client(server) as http:
        cat = await _add(http, "My API cat is called Mia")
        tea = await _add(http, "I prefer API tea over coffee", kind="preference", pinned=True)
        assert cat["kind"] == "fact" and cat["source"] == "api" and cat["use_count"] == 0 and cat["pinned"] is False
        assert tea["kind"] == "preference" and tea["pinned"] is True
        assert (await http.get(f"/api/memory/{cat['id']}")).json() == cat

        page = (await http.get("/api/memory", params={"limit": 1})).json()
        assert set(page) == {"memories", "total", "limit", "offset"}
        assert page["limit"] == 1 and page["offset"] == 0 and page["total"] >= 2
        assert page["memories"][0]["id"] == tea["id"]  # newest first
        preferences = (await http.get("/api/memory", params={"kind": "preference", "limit": 200})).json()
        assert {m["kind"] for m in preferences["memories"]} == {"preference"}

        found = (await http.post("/api/memory/search", json={"query": "what is my API cat called?"})).json()
        assert found["query"] == "what is my API cat called?" and found["took_ms"] >= 0
        assert found["results"][0]["id"] == cat["id"] and 0 < found["results"][0]["score"] <= 1
        assert found["results"][0]["content"] == cat["content"]
        only = (await http.post("/api/memory/search", json={"query": "API", "kind": "preference", "limit": 5})).json()
        assert [r["id"] for r in only["results"]] == [tea["id"]]

        deleted = await http.delete(f"/api/memory/{cat['id']}")
        assert deleted.status_code == 200 and deleted.json() == {"id": cat["id"], "deleted": True}
        assert_error(await http.delete(f"/api/memory/{cat['id']}"), 404, "memory_not_found")
        assert_error(await http.get(f"/api/memory/{cat['id']}"), 404, "memory_not_found")
        found = (await http.post("/api/memory/search", json={"query": "API cat"})).json()
        assert cat["id"] not in [r["id"] for r in found["results"]]


@pytest.mark.parametrize(
    "query",
    [
        '"unbalanced zebra',
        "zebra AND OR",
        "*",
        "NEAR(",
        "zebra NEAR(",
        "AND OR",
        "(",
        "zebra*)",
        "'; DROP TABLE memories; --",
    ],
)
async def test_search_syntax_errors_are_200(server, query):
    async with client(server) as http:
        await _add(http, "the zebra lives in the zoo")
        response = await http.post("/api/memory/search", json={"query": query})
        assert response.status_code == 200, response.text
        contents = [r["content"] for r in response.json()["results"]]
        if "zebra" in query:
            assert "the zebra lives in the zoo" in contents
        assert (await http.get("/api/memory")).status_code == 200  # nothing dropped


@pytest.mark.parametrize(
    "body, code",
    [
        ({"query": ""}, "invalid_request"),
        ({"query": "   "}, "invalid_request"),
        ({"query": "x" * 100_000}, "invalid_request"),
        ({"query": "x" * 1001}, "invalid_request"),
        ({"query": "cat", "limit": 0}, "invalid_request"),
        ({"query": "cat", "limit": 101}, "invalid_request"),
        ({"query": "cat", "limit": "5"}, "invalid_request"),
        ({"query": "cat", "kind": "opinion"}, "invalid_request"),
        ({"query": 5}, "invalid_request"),
        ({}, "invalid_request"),
        ({"query": "cat", "extra": 1}, None),  # unknown fields are ignored, as on every endpoint
    ],
)
async def test_bad_search_requests(server, body, code):
    async with client(server) as http:
        before = (await http.get("/api/memory/stats")).json()["searches"]["by_origin"]["search"]
        response = await http.post("/api/memory/search", json=body)
        if code is None:
            assert response.status_code == 200
            return
        error = assert_error(response, 422, code)
        if "limit" in body:
            assert "limit" in error["message"]
        after = (await http.get("/api/memory/stats")).json()["searches"]["by_origin"]["search"]
        assert after == before  # a refused request is not a search served


@pytest.mark.parametrize(
    "body",
    [
        {"content": ""},
        {"content": "   "},
        {"content": "x" * 10_001},
        {"content": "ok", "kind": "opinion"},
        {"content": "ok", "pinned": "yes"},
        {"content": 5},
        {},
    ],
)
async def test_bad_memories_are_refused_and_nothing_is_stored(server, body):
    async with client(server) as http:
        before = (await http.get("/api/memory")).json()["total"]
        assert_error(await http.post("/api/memory", json=body), 422, "invalid_request")
        assert (await http.get("/api/memory")).json()["total"] == before


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("DELETE", "/api/memory/2147483000", 404),
        ("GET", "/api/memory/2147483000", 404),
        ("DELETE", "/api/memory/0", 422),
        ("DELETE", "/api/memory/-3", 422),
        ("DELETE", "/api/memory/99999999999999999999999", 422),
        ("DELETE", "/api/memory/abc", 422),
        ("GET", "/api/memory?limit=0", 422),
        ("GET", "/api/memory?limit=201", 422),
        ("GET", "/api/memory?offset=-1", 422),
        ("GET", "/api/memory?offset=99999999999999999999", 422),
        ("GET", "/api/memory?kind=opinion", 422),
    ],
)
async def test_bad_ids_and_paging(server, method, path, status):
    async with client(server) as http:
        assert_error(await http.request(method, path), status)


async def test_stats(server):
    async with client(server) as http:
        await _add(http, "Stats: Herr Müller ist mein Zahnarzt", kind="note")
        await http.post("/api/memory/search", json={"query": "Zahnarzt"})
        stats = (await http.get("/api/memory/stats")).json()
    assert set(stats) == {
        "total",
        "by_kind",
        "by_source",
        "pinned",
        "size",
        "most_used",
        "oldest",
        "newest",
        "searches",
    }
    assert set(stats["by_kind"]) >= {"fact", "preference", "note", "summary"} and stats["by_kind"]["note"] >= 1
    assert stats["by_source"]["api"] >= 1 and stats["total"] >= 1
    assert stats["size"]["bytes"] > stats["size"]["chars"] > 0
    assert (
        stats["newest"]["content"] == "Stats: Herr Müller ist mein Zahnarzt"
        and stats["oldest"]["id"] <= stats["newest"]["id"]
    )
    searches = stats["searches"]
    assert searches["served"] >= 1 and searches["by_origin"]["search"] >= 1
    assert 0 < searches["p50_ms"] <= searches["p95_ms"]


async def test_memory_routes_are_documented(server):
    async with client(server) as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
    assert {"/api/memory", "/api/memory/search", "/api/memory/stats", "/api/memory/{memory_id}"} <= set(paths)
