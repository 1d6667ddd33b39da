"""The access middleware in-process on a small ASGI app: request ids, one record per request,
streams logged when they end, errors logged as 500."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from jarvis.api.middleware import AccessLogMiddleware
from jarvis.logs import ACCESS_LOGGER, request_id_var


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def access():
    logger = logging.getLogger(ACCESS_LOGGER)
    handler = Records()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


seen_ids: list[str | None] = []
stream_finished = asyncio.Event()


async def hello(request):
    seen_ids.append(request_id_var.get())
    return PlainTextResponse("hi")


async def stream(request):
    async def body():
        for i in range(3):
            await asyncio.sleep(0.05)
            yield f"data: {i}\n\n"
        stream_finished.set()

    return StreamingResponse(body(), media_type="text/event-stream")


async def boom(request):
    raise RuntimeError("boom")


def client() -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/hello", hello), Route("/stream", stream), Route("/boom", boom)])
    app.add_middleware(AccessLogMiddleware)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://test")


async def test_request_id_generated_returned_and_logged_once(access):
    async with client() as http:
        response = await http.get("/hello", params={"a": "1"})
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32 and seen_ids[-1] == request_id
    [record] = access.records
    assert record.request_id == request_id
    assert (record.method, record.path, record.status, record.query) == ("GET", "/hello", 200, "a=1")
    assert record.duration_ms >= 0 and record.getMessage().startswith("GET /hello?a=1 200 ")


@pytest.mark.parametrize(
    "incoming, kept",
    [
        ("client-id-42", True),
        ("0b7c5a4e-2b1f-4a8e-9d3c-1e2f3a4b5c6d", True),
        ("has spaces in it", False),
        ("x" * 200, False),
        ("<script>", False),
        ("", False),
    ],
)
async def test_incoming_request_id_is_kept_only_when_sane(access, incoming, kept):
    async with client() as http:
        response = await http.get("/hello", headers={"X-Request-ID": incoming})
    returned = response.headers["x-request-id"]
    assert (returned == incoming) is kept
    assert response.headers.get_list("x-request-id") == [returned]
    assert access.records[-1].request_id == returned


async def test_a_stream_is_logged_when_it_ends(access):
    stream_finished.clear()
    async with client() as http, http.stream("GET", "/stream") as response:
        assert response.headers["x-request-id"]
        chunks = [chunk async for chunk in response.aiter_text()]
    assert "".join(chunks).count("data:") == 3 and stream_finished.is_set()
    [record] = access.records
    assert record.status == 200 and record.duration_ms >= 100  # the whole stream, not its first byte


async def test_an_unhandled_error_is_logged_as_500(access):
    async with client() as http:
        response = await http.get("/boom")
    assert response.status_code == 500
    [record] = access.records
    assert record.status == 500 and record.path == "/boom"
