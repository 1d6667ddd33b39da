"""Every client mistake gets a 4xx in the project's error format, and nothing is stored."""

from __future__ import annotations

import pytest

from tests.support.clients import assert_error, client

OK = {"temperature": 0, "max_tokens": 4}


async def _counts(http) -> int:
    return (await http.get("/api/chat/sessions")).json()["total"]


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"message": ""}, 422, "invalid_request"),
        ({"message": "   \n "}, 422, "invalid_request"),
        ({"message": "x" * (1 << 20)}, 413, "payload_too_large"),
        ({}, 422, "invalid_request"),
        ({"message": 123}, 422, "invalid_request"),
        ({"message": ["a"]}, 422, "invalid_request"),
        ({"message": "hi", "stream": "yes"}, 422, "invalid_request"),
        ({"message": "hi", "temperature": "hot"}, 422, "invalid_request"),
        ({"message": "hi", "temperature": 2.5}, 422, "invalid_request"),
        ({"message": "hi", "temperature": -0.1}, 422, "invalid_request"),
        ({"message": "hi", "max_tokens": 0}, 422, "invalid_request"),
        ({"message": "hi", "max_tokens": "10"}, 422, "invalid_request"),
        ({"message": "hi", "model": "no-such-model"}, 404, "model_not_found"),
        ({"message": "hi", "model": "ollama/llama3.2"}, 404, "model_not_found"),  # engine not configured
        ({"message": "hi", "sessionId": "no-such-session"}, 404, "session_not_found"),
        ({"message": "hi", "sessionId": 7}, 422, "invalid_request"),
    ],
)
@pytest.mark.parametrize("path", ["/api/chat/messages", "/api/v1/chat/"])
async def test_bad_chat_requests(server, path, body, status, code):
    async with client(server) as http:
        before = await _counts(http)
        error = assert_error(await http.post(path, json=body), status, code)
        assert await _counts(http) == before
    if code == "invalid_request" and "temperature" in body and isinstance(body["temperature"], float):
        assert "temperature" in error["message"]


async def test_streaming_request_with_bad_input_is_a_plain_error_not_a_stream(server):
    async with client(server) as http:
        response = await http.post("/api/chat/messages", json={"message": "", "stream": True})
    assert_error(response, 422)


async def test_body_that_is_not_json(server):
    async with client(server) as http:
        response = await http.post(
            "/api/chat/messages", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert_error(response, 422, "invalid_request")


@pytest.mark.parametrize(
    "method, path, body, status, code",
    [
        ("GET", "/api/chat/sessions/nope", None, 404, "session_not_found"),
        ("PATCH", "/api/chat/sessions/nope", {"title": "x"}, 404, "session_not_found"),
        ("DELETE", "/api/chat/sessions/nope", None, 404, "session_not_found"),
        ("POST", "/api/chat/sessions", {"title": ""}, 422, "invalid_request"),
        ("POST", "/api/chat/sessions", {"model": "no-such-model"}, 404, "model_not_found"),
        ("POST", "/api/chat/sessions", {"title": 5}, 422, "invalid_request"),
        ("GET", "/api/chat/sessions?limit=0", None, 422, "invalid_request"),
        ("GET", "/api/chat/sessions?limit=abc", None, 422, "invalid_request"),
        ("GET", "/api/chat/sessions?offset=-1", None, 422, "invalid_request"),
        ("GET", "/api/no/such/route", None, 404, "not_found"),
        ("PUT", "/api/chat/messages", None, 405, "method_not_allowed"),
        ("POST", "/api/models/no-such-model/activate", None, 404, "model_not_found"),
    ],
)
async def test_bad_session_and_route_requests(server, method, path, body, status, code):
    async with client(server) as http:
        before = await _counts(http)
        assert_error(await http.request(method, path, json=body), status, code)
        assert await _counts(http) == before


async def test_rename_with_empty_title_keeps_the_old_one(server):
    async with client(server) as http:
        session = (await http.post("/api/chat/sessions", json={"title": "keep me"})).json()
        assert_error(await http.patch(f"/api/chat/sessions/{session['id']}", json={"title": ""}), 422)
        assert (await http.get(f"/api/chat/sessions/{session['id']}")).json()["title"] == "keep me"
