"""The `openai` engine against a real OpenAI-compatible peer nobody here wrote:
llama-cpp-python's own server, serving the bundled model on loopback."""

from __future__ import annotations

import httpx
import pytest

from jarvis.engines.base import Chunk, GenerationOptions
from jarvis.engines.openai import OpenAIEngine
from jarvis.errors import EngineError, EngineUnavailable, JarvisError
from tests.support.live import LiveServer
from tests.support.llama_server import LlamaCppServer
from tests.support.postgres import free_port

# An HF-style id with a slash, as vLLM lists models: `openai/google/gemma-3-270m-it` must route.
MODEL_ID = "google/gemma-3-270m-it"
API_KEY = "sk-jarvis-test"
QUESTION = "Name three colours."
MESSAGES = [{"role": "user", "content": QUESTION}]
GREEDY = GenerationOptions(temperature=0.0, max_tokens=16)


@pytest.fixture(scope="session")
def peer(bundled_path):
    server = LlamaCppServer(bundled_path, alias=MODEL_ID, api_key=API_KEY).start()
    yield server
    server.stop()


@pytest.fixture
async def engine(peer):
    engine = OpenAIEngine(peer.base_url, api_key=API_KEY)
    yield engine
    await engine.close()


@pytest.fixture
def jarvis(peer, make_settings):
    live = LiveServer(make_settings(openai_base_url=peer.base_url, openai_api_key=API_KEY, load_on_start=False)).start()
    yield live
    live.stop()


async def peer_answer(peer: LlamaCppServer, messages: list[dict], *, max_tokens: int) -> dict:
    """The peer's own non-streaming greedy answer: `{"content", "finish_reason"}`."""
    async with httpx.AsyncClient(headers=peer.headers, timeout=60) as client:
        response = await client.post(
            f"{peer.base_url}/chat/completions",
            json={"model": MODEL_ID, "messages": messages, "temperature": 0.0, "max_tokens": max_tokens},
        )
    response.raise_for_status()
    choice = response.json()["choices"][0]
    return {"content": choice["message"]["content"], "finish_reason": choice["finish_reason"]}


async def collect(engine: OpenAIEngine, messages: list[dict], options: GenerationOptions) -> list[Chunk]:
    return [chunk async for chunk in engine.stream(MODEL_ID, messages, options)]


async def test_greedy_stream_is_the_peers_own_answer_in_pieces(engine, peer):
    *pieces, last = await collect(engine, MESSAGES, GREEDY)

    assert len(pieces) > 1, "the answer should arrive in several pieces"
    assert all(chunk.text and chunk.finish_reason is None for chunk in pieces)
    assert last.text == "" and last.finish_reason in ("stop", "length")
    expected = await peer_answer(peer, MESSAGES, max_tokens=GREEDY.max_tokens)
    assert "".join(chunk.text for chunk in pieces) == expected["content"]
    assert last.finish_reason == expected["finish_reason"]


async def test_list_models_is_what_the_peer_lists(engine):
    models = await engine.list_models()
    assert [(model.name, model.engine) for model in models] == [(MODEL_ID, "openai")]


async def test_unreachable_base_url_is_engine_unavailable():
    engine = OpenAIEngine(f"http://127.0.0.1:{free_port()}/v1")
    try:
        with pytest.raises(EngineUnavailable, match="not reachable"):
            await collect(engine, MESSAGES, GREEDY)
        with pytest.raises(EngineUnavailable):
            await engine.list_models()
    finally:
        await engine.close()


async def test_peer_refusing_the_key_is_an_engine_error(peer):
    engine = OpenAIEngine(peer.base_url, api_key="wrong-key")
    try:
        with pytest.raises(EngineError, match="401: Invalid API key") as raised:
            await collect(engine, MESSAGES, GREEDY)
        assert isinstance(raised.value, JarvisError) and not isinstance(raised.value, EngineUnavailable)
        with pytest.raises(EngineError, match="401"):
            await engine.list_models()
    finally:
        await engine.close()


async def test_peer_failing_the_request_is_an_engine_error_with_its_message(engine):
    # This peer answers its own request validation failures with 500 and an OpenAI-style body.
    with pytest.raises(EngineError, match=r"(?s)openai answered 500: .*top_p") as raised:
        await collect(engine, MESSAGES, GenerationOptions(max_tokens=4, top_p=7.0))
    assert raised.value.status_code == 502


async def test_stream_the_peer_ends_without_an_answer_is_an_engine_error(engine):
    # A prompt longer than the peer's n_ctx: it answers 200, then ends the event stream
    # empty (no choices, no [DONE]). That must not pass for a finished, empty answer.
    too_long = [{"role": "user", "content": "hello " * 3000}]
    with pytest.raises(EngineError, match="before it was done"):
        await collect(engine, too_long, GenerationOptions(max_tokens=4))


async def test_base_url_without_v1_is_an_engine_error_not_an_unknown_model(peer):
    engine = OpenAIEngine(peer.url, api_key=API_KEY)
    try:
        with pytest.raises(EngineError, match="base URL") as raised:
            await engine.list_models()
        assert raised.value.code == "engine_error"
    finally:
        await engine.close()


async def test_chat_through_jarvis_stores_the_peers_answer(jarvis, peer):
    async with httpx.AsyncClient(base_url=jarvis.url, timeout=60) as client:
        listed = (await client.get("/api/v1/chat/models")).json()
        assert f"openai/{MODEL_ID}" in listed["models"]

        response = await client.post(
            "/api/chat/messages",
            json={"message": QUESTION, "model": f"openai/{MODEL_ID}", "temperature": 0, "max_tokens": 16},
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        session = (await client.get(f"/api/chat/sessions/{answer['sessionId']}")).json()

    assert answer["role"] == "assistant" and answer["status"] == "complete"
    assert answer["model"] == f"openai/{MODEL_ID}"
    expected = await peer_answer(peer, MESSAGES, max_tokens=16)
    assert answer["content"] == expected["content"] and answer["content"]
    assert answer["finish_reason"] == expected["finish_reason"]
    assert [(m["role"], m["content"]) for m in session["messages"]] == [
        ("user", QUESTION),
        ("assistant", answer["content"]),
    ]
    assert session["model"] == f"openai/{MODEL_ID}"


async def test_unknown_openai_model_is_404_with_error_body(jarvis):
    async with httpx.AsyncClient(base_url=jarvis.url, timeout=60) as client:
        response = await client.post("/api/chat/messages", json={"message": "hi", "model": "openai/nope"})
        sessions = (await client.get("/api/chat/sessions")).json()
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and "nope" in error["message"]
    assert sessions["total"] == 0, "a refused request must not leave a session behind"
