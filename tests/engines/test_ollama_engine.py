"""The `ollama` engine against a stand-in speaking Ollama's documented wire format on loopback
(Ollama itself cannot run here; see tests/support/ollama_server.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from jarvis.engines.base import Chunk, GenerationOptions, Usage
from jarvis.engines.ollama import OllamaEngine
from jarvis.errors import EngineError, EngineUnavailable, ModelNotFound
from tests.support.live import LiveServer
from tests.support.ollama_server import OllamaServer, echo_pieces
from tests.support.postgres import free_port

MESSAGES = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def ollama():
    server = OllamaServer({"echo": "echo", "broken": "broken", "endless": "endless"}).start()
    yield server
    server.stop()


@pytest.fixture
async def engine(ollama):
    engine = OllamaEngine(ollama.url)
    yield engine
    await engine.close()


@pytest.fixture
def jarvis(ollama, make_settings):
    # OLLAMA_HOST in Ollama's own bare `host:port` form.
    live = LiveServer(make_settings(ollama_host=ollama.host, load_on_start=False)).start()
    yield live
    live.stop()


async def collect(engine: OllamaEngine, model: str, messages: list[dict], options: GenerationOptions) -> list[Chunk]:
    return [chunk async for chunk in engine.stream(model, messages, options)]


async def test_stream_sends_model_messages_and_options_and_ends_with_usage(engine, ollama):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there friend"}]
    options = GenerationOptions(temperature=0.2, max_tokens=50, top_p=0.9, seed=7, stop=["\n\n"])

    *pieces, last = await collect(engine, "echo", messages, options)

    assert [chunk.text for chunk in pieces] == echo_pieces(messages) == ["You ", "said: ", "hello ", "there ", "friend"]
    assert all(chunk.finish_reason is None and chunk.usage is None for chunk in pieces)
    assert last == Chunk(text="", finish_reason="stop", usage=Usage(prompt_tokens=5, completion_tokens=5))
    sent = ollama.requests[-1]
    assert sent["model"] == "echo" and sent["messages"] == messages and sent["stream"] is True
    assert sent["options"] == {"temperature": 0.2, "num_predict": 50, "top_p": 0.9, "seed": 7, "stop": ["\n\n"]}


async def test_max_tokens_cuts_the_answer_with_finish_reason_length(engine, ollama):
    *pieces, last = await collect(engine, "echo:latest", MESSAGES, GenerationOptions(max_tokens=2))
    assert "".join(chunk.text for chunk in pieces) == "You said: "
    assert last.finish_reason == "length" and last.usage == Usage(prompt_tokens=2, completion_tokens=2)
    assert ollama.requests[-1]["options"] == {"num_predict": 2}


async def test_stream_is_the_same_answer_as_non_streaming(engine, ollama):
    # Keeps the stand-in honest: its two modes agree, as Ollama's do.
    pieces = await collect(engine, "echo", MESSAGES, GenerationOptions())
    async with httpx.AsyncClient(base_url=ollama.url) as client:
        whole = (await client.post("/api/chat", json={"model": "echo", "messages": MESSAGES, "stream": False})).json()
    assert whole["done"] is True and whole["done_reason"] == "stop"
    assert whole["message"] == {"role": "assistant", "content": "".join(chunk.text for chunk in pieces)}
    assert whole["eval_count"] == pieces[-1].usage.completion_tokens


async def test_list_models_is_what_tags_lists(engine):
    models = await engine.list_models()
    assert [(m.name, m.engine) for m in models] == [
        ("echo:latest", "ollama"),
        ("broken:latest", "ollama"),
        ("endless:latest", "ollama"),
    ]
    assert models[0].details["family"] == "gemma3" and models[0].details["quantization_level"] == "Q4_K_M"


async def test_unknown_model_is_model_not_found(engine):
    with pytest.raises(ModelNotFound, match="try pulling it first"):
        await collect(engine, "nope", MESSAGES, GenerationOptions())


async def test_error_line_mid_stream_is_an_engine_error_after_the_text_so_far(engine):
    received: list[str] = []
    with pytest.raises(EngineError, match="unexpected EOF") as raised:
        async for chunk in engine.stream("broken", MESSAGES, GenerationOptions()):
            received.append(chunk.text)
    assert received == ["Partial"]
    assert not isinstance(raised.value, EngineUnavailable)


async def test_unreachable_host_is_engine_unavailable():
    engine = OllamaEngine(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(EngineUnavailable, match="not reachable"):
            await collect(engine, "echo", MESSAGES, GenerationOptions())
        with pytest.raises(EngineUnavailable):
            await engine.list_models()
    finally:
        await engine.close()


async def test_closing_the_stream_early_lets_go_of_the_server(engine, ollama):
    ollama.abandoned.clear()
    stream = engine.stream("endless", MESSAGES, GenerationOptions())
    first = await anext(stream)
    assert first.text == "word0 "

    # The limits only keep a regression from hanging the run; they assert no speed.
    await asyncio.wait_for(stream.aclose(), 60)
    assert await asyncio.to_thread(ollama.abandoned.wait, 60), "the server kept streaming to nobody"
    # The engine is still usable afterwards.
    *_, last = await collect(engine, "echo", MESSAGES, GenerationOptions())
    assert last.finish_reason == "stop"


async def test_chat_through_jarvis_stores_the_answer_and_lists_the_models(jarvis, ollama):
    async with httpx.AsyncClient(base_url=jarvis.url, timeout=60) as client:
        listed = (await client.get("/api/v1/chat/models")).json()
        assert {"ollama/echo:latest", "ollama/broken:latest", "ollama/endless:latest"} <= set(listed["models"])

        response = await client.post(
            "/api/chat/messages",
            json={"message": "hello there", "model": "ollama/echo", "temperature": 0.5, "max_tokens": 64},
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        first_request = ollama.requests[-1]

        # The session remembers the model and sends the history with the next message.
        follow_up = await client.post("/api/chat/messages", json={"message": "again", "sessionId": answer["sessionId"]})
        assert follow_up.status_code == 200, follow_up.text
        second_request = ollama.requests[-1]
        session = (await client.get(f"/api/chat/sessions/{answer['sessionId']}")).json()

    assert answer["role"] == "assistant" and answer["status"] == "complete"
    assert answer["content"] == "You said: hello there" and answer["finish_reason"] == "stop"
    assert answer["model"] == "ollama/echo"
    assert (answer["prompt_tokens"], answer["completion_tokens"]) == (2, 4)
    assert first_request["model"] == "echo"
    assert first_request["messages"] == [{"role": "user", "content": "hello there"}]
    assert first_request["options"] == {"temperature": 0.5, "num_predict": 64}

    assert follow_up.json()["content"] == "You said: again"
    assert second_request["model"] == "echo"
    assert second_request["messages"] == [
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "You said: hello there"},
        {"role": "user", "content": "again"},
    ]
    assert [(m["role"], m["content"]) for m in session["messages"]] == [
        ("user", "hello there"),
        ("assistant", "You said: hello there"),
        ("user", "again"),
        ("assistant", "You said: again"),
    ]


async def test_unknown_ollama_model_is_404_with_error_body(jarvis):
    async with httpx.AsyncClient(base_url=jarvis.url, timeout=60) as client:
        response = await client.post("/api/chat/messages", json={"message": "hi", "model": "ollama/nope"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and "nope" in error["message"]


async def test_failure_mid_answer_is_502_and_stored_as_an_error(jarvis):
    async with httpx.AsyncClient(base_url=jarvis.url, timeout=60) as client:
        response = await client.post("/api/chat/messages", json={"message": "hi", "model": "ollama/broken"})
        assert response.status_code == 502, response.text
        error = response.json()["error"]
        session = (await client.get(f"/api/chat/sessions/{error['session_id']}")).json()
    assert error["code"] == "engine_error" and "unexpected EOF" in error["message"]
    stored = session["messages"][-1]
    assert stored["id"] == error["message_id"]
    assert (stored["role"], stored["status"], stored["content"]) == ("assistant", "error", "Partial")


async def test_tool_calling_end_to_end_with_a_plugin_tool(make_settings):
    """The model asks for the calculator plugin's tool; JARVIS runs it and sends the result back."""
    ollama = OllamaServer({"toolbot:latest": "tools"}).start()
    server = LiveServer(make_settings(ollama_host=ollama.url, load_on_start=False)).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            answer = await http.post("/api/chat/messages", json={"message": "compute 6*7", "model": "ollama/toolbot"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["content"] == "The result is 42."
        first, second = ollama.requests[-2:]
        assert "calculator" in [t["function"]["name"] for t in first["tools"]]
        assert second["messages"][-2]["tool_calls"][0]["function"] == {
            "name": "calculator",
            "arguments": {"expression": "6*7"},
        }
        assert second["messages"][-1] == {"role": "tool", "content": "42"}
    finally:
        server.stop()
        ollama.stop()
