"""The Ollama-compatible API driven by the official `ollama` Python package against a real
server on loopback: the bundled model (SQLite and PostgreSQL), pulls from the local test hub,
and tool calls through the Ollama wire-format stand-in used as an engine."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid

import httpx
import ollama
import pytest

from jarvis import __version__
from jarvis.models.bundled import BUNDLED_NAME
from tests.models.conftest import download_settings  # noqa: F401  (a fixture)
from tests.support.clients import CALCULATOR
from tests.support.gguf_files import gguf_bytes
from tests.support.live import LiveServer
from tests.support.ollama_server import OllamaServer

MODEL = BUNDLED_NAME
PROMPT = "Write a short poem about the sea."
MESSAGES = [{"role": "user", "content": PROMPT}]
GREEDY = {"temperature": 0, "num_predict": 16}
STATS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration")


@pytest.fixture
def client(server):
    return ollama.Client(host=server.url, timeout=120)


def session_count(server) -> int:
    return httpx.get(server.url + "/api/chat/sessions", timeout=30).json()["total"]


def stored(server, session_id: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/chat/sessions/{session_id}", timeout=30)


def new_session_id() -> str:
    return f"s1-{uuid.uuid4().hex[:8]}"


def assert_final_statistics(final, *, limit: int | None = None) -> None:
    assert final.done is True and final.done_reason in ("stop", "length")
    for field in STATS:
        assert isinstance(getattr(final, field), int), field
    assert final.prompt_eval_count > 0 and final.eval_count > 0
    assert final.total_duration > 0 and final.total_duration >= final.eval_duration
    if limit is not None and final.done_reason == "length":
        assert final.eval_count == limit


# --- chat and generate -----------------------------------------------------------------


def test_chat_not_streamed_has_the_answer_and_final_statistics(client):
    response = client.chat(model=MODEL, messages=MESSAGES, options=GREEDY)
    assert response.model == MODEL and response.created_at
    assert response.message.role == "assistant" and response.message.content
    assert_final_statistics(response, limit=GREEDY["num_predict"])


def test_chat_streamed_equals_not_streamed_at_temperature_0(client):
    whole = client.chat(model=MODEL, messages=MESSAGES, options=GREEDY)
    parts = list(client.chat(model=MODEL, messages=MESSAGES, options=GREEDY, stream=True))
    *pieces, final = parts
    assert len(pieces) > 1 and not any(p.done for p in pieces)
    assert all(p.message.role == "assistant" for p in parts)
    assert "".join(p.message.content for p in pieces) == whole.message.content
    assert final.message.content == ""
    assert_final_statistics(final, limit=GREEDY["num_predict"])
    assert (final.done_reason, final.eval_count, final.prompt_eval_count) == (
        whole.done_reason,
        whole.eval_count,
        whole.prompt_eval_count,
    )


def test_num_predict_cuts_the_answer_with_done_reason_length(client):
    response = client.chat(model=MODEL, messages=MESSAGES, options={"temperature": 0, "num_predict": 3})
    assert response.done_reason == "length" and response.eval_count == 3


def test_stop_option_ends_the_answer_before_the_stop_text(client):
    text = client.chat(model=MODEL, messages=MESSAGES, options=GREEDY).message.content
    words = text.split()
    assert len(words) >= 4, text
    stop = next(w for w in words[2:] if text.index(w) > 0)
    response = client.chat(model=MODEL, messages=MESSAGES, options={**GREEDY, "stop": [stop]})
    assert response.done_reason == "stop"
    assert response.message.content == text[: text.index(stop)]


def test_seed_makes_sampling_repeatable(client):
    def sample(seed: int) -> str:
        return client.chat(
            model=MODEL, messages=MESSAGES, options={"temperature": 1.0, "seed": seed, "num_predict": 16}
        ).message.content

    assert sample(99) == sample(99)


def test_generate_streamed_and_not(client):
    whole = client.generate(model=MODEL, prompt=PROMPT, options=GREEDY)
    assert whole.response and whole.done
    assert_final_statistics(whole, limit=GREEDY["num_predict"])
    *pieces, final = client.generate(model=MODEL, prompt=PROMPT, options=GREEDY, stream=True)
    assert len(pieces) > 1
    assert "".join(p.response for p in pieces) == whole.response
    assert final.response == "" and final.done
    assert_final_statistics(final, limit=GREEDY["num_predict"])
    # the same question through chat gets the same answer: one chat service behind both
    assert client.chat(model=MODEL, messages=MESSAGES, options=GREEDY).message.content == whole.response


def test_generate_with_a_system_prompt_and_raw(client):
    answer = client.generate(
        model=MODEL,
        prompt="Name a color.",
        system="Answer with one word.",
        options={"temperature": 0, "num_predict": 6},
    )
    assert answer.response and answer.done
    raw = client.generate(
        model=MODEL, prompt="The capital of France is", raw=True, options={"temperature": 0, "num_predict": 6}
    )
    assert raw.response and raw.done and raw.eval_count > 0


def test_empty_prompt_or_chat_just_loads_the_model(client):
    assert client.generate(model=MODEL, prompt="").done_reason == "load"
    assert client.chat(model=MODEL, messages=[]).done_reason == "load"


def test_plugin_commands_work_through_the_ollama_api(client):
    assert "14" in client.chat(model=MODEL, messages=[{"role": "user", "content": "/calc 2*(3+4)"}]).message.content
    assert "14" in client.generate(model=MODEL, prompt="/calc 2*(3+4)").response


# --- models ------------------------------------------------------------------------------


def test_list_show_and_ps(client):
    listed = {m.model: m for m in client.list().models}
    bundled = listed[MODEL]
    assert bundled.size > 100_000_000 and re.fullmatch(r"[0-9a-f]{64}", bundled.digest)
    assert bundled.details.format == "gguf" and bundled.details.family == "gemma3"
    assert bundled.details.quantization_level == "Q4_K_M"
    assert bundled.modified_at is not None

    shown = client.show(MODEL)
    assert shown.details.family == "gemma3" and shown.details.quantization_level == "Q4_K_M"
    assert shown.modelinfo["general.architecture"] == "gemma3"
    assert shown.modelinfo["gemma3.context_length"] > 0
    assert shown.modelfile and shown.capabilities

    running = client.ps().models
    assert [m.model for m in running] == [MODEL]
    assert running[0].context_length > 0 and running[0].digest == bundled.digest


def test_embed_and_the_older_embeddings(client):
    response = client.embed(model=MODEL, input=["The cat sat on the mat.", "Stock markets fell sharply."])
    assert len(response.embeddings) == 2 and all(len(v) == 640 for v in response.embeddings)
    assert response.embeddings[0] != response.embeddings[1]
    assert response.prompt_eval_count > 0
    single = client.embed(model=MODEL, input="The cat sat on the mat.")
    assert single.embeddings[0] == pytest.approx(response.embeddings[0], rel=1e-4, abs=1e-5)
    older = client.embeddings(model=MODEL, prompt="The cat sat on the mat.")
    assert older.embedding == pytest.approx(response.embeddings[0], rel=1e-4, abs=1e-5)


def test_version(server):
    # the official client has no call for it; Ollama's CLI and Open WebUI read it
    assert httpx.get(server.url + "/api/version", timeout=30).json() == {"version": __version__}


# --- pull and delete from the test hub ------------------------------------------------------


@pytest.fixture
def hub_server(download_settings):  # noqa: F811
    server = LiveServer(download_settings()).start()
    yield server
    server.stop()


def test_pull_with_progress_then_list_show_and_delete(hub, hub_server):
    data = gguf_bytes(payload=6 << 20)
    hub.add_hf_repo("acme/tiny-GGUF", {"tiny-Q4_K_M.gguf": data})
    digest = hashlib.sha256(data).hexdigest()
    client = ollama.Client(host=hub_server.url, timeout=120)

    updates = list(client.pull("hf.co/acme/tiny-GGUF", stream=True))
    statuses = [u.status for u in updates]
    collapsed = [s for i, s in enumerate(statuses) if i == 0 or s != statuses[i - 1]]
    assert collapsed == [
        "pulling manifest",
        f"pulling {digest[:12]}",
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    layer = [u for u in updates if u.status.startswith("pulling ") and u.status != "pulling manifest"]
    assert all(u.digest == f"sha256:{digest}" and u.total == len(data) for u in layer)
    completed = [u.completed for u in layer]
    assert completed == sorted(completed) and completed[-1] == len(data)

    name = "hf.co/acme/tiny-GGUF:Q4_K_M"
    listed = {m.model: m for m in client.list().models}
    assert listed[name].digest == digest and listed[name].size == len(data)
    assert client.show(name).details.quantization_level == "Q4_K_M"
    # pulling what is installed is quick and ends in success; stream=False answers once
    assert client.pull("hf.co/acme/tiny-GGUF").status == "success"

    assert client.delete(name).status == "success"
    assert name not in [m.model for m in client.list().models]
    with pytest.raises(ollama.ResponseError) as caught:
        client.delete(name)
    assert caught.value.status_code == 404


@pytest.mark.parametrize("stream", [True, False])
def test_pull_of_something_the_hub_does_not_have_is_404(hub, hub_server, stream):
    client = ollama.Client(host=hub_server.url, timeout=60)
    with pytest.raises(ollama.ResponseError) as caught:
        result = client.pull("hf.co/acme/no-such-GGUF", stream=stream)
        if stream:
            list(result)
    assert caught.value.status_code == 404
    assert caught.value.error and "Traceback" not in caught.value.error
    assert "hf.co/acme/no-such-GGUF" not in json.dumps([m.model for m in client.list().models])


# --- the session header ------------------------------------------------------------------


def test_session_header_stores_the_exchange_and_no_header_stores_nothing(client, server):
    before = session_count(server)
    client.chat(model=MODEL, messages=MESSAGES, options={"temperature": 0, "num_predict": 4})
    list(client.generate(model=MODEL, prompt=PROMPT, options={"temperature": 0, "num_predict": 4}, stream=True))
    assert session_count(server) == before

    session_id = new_session_id()
    with_session = ollama.Client(host=server.url, timeout=120, headers={"X-Jarvis-Session": session_id})
    answer = with_session.chat(
        model=MODEL, messages=MESSAGES, options={"temperature": 0, "num_predict": 4}
    ).message.content
    followup = [*MESSAGES, {"role": "assistant", "content": answer}, {"role": "user", "content": "Shorter, please."}]
    streamed = "".join(
        p.message.content
        for p in with_session.chat(
            model=MODEL, messages=followup, options={"temperature": 0, "num_predict": 4}, stream=True
        )
    )
    assert session_count(server) == before + 1
    messages = stored(server, session_id).json()["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", PROMPT),
        ("assistant", answer),
        ("user", "Shorter, please."),
        ("assistant", streamed),
    ]
    assert all(m["status"] == "complete" for m in messages)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model_is_404_everywhere(server, stream):
    session_id = new_session_id()
    client = ollama.Client(host=server.url, timeout=60, headers={"X-Jarvis-Session": session_id})
    before = session_count(server)
    calls = [
        lambda: client.chat(model="no-such-model", messages=MESSAGES, stream=stream),
        lambda: client.generate(model="no-such-model", prompt=PROMPT, stream=stream),
        lambda: client.show("no-such-model"),
        lambda: client.delete("no-such-model"),
        lambda: client.embed(model="no-such-model", input="hi"),
    ]
    for call in calls:
        with pytest.raises(ollama.ResponseError) as caught:
            result = call()
            if stream and not hasattr(result, "model_dump"):
                list(result)
        assert caught.value.status_code == 404
        assert "no-such-model" in caught.value.error
    assert session_count(server) == before and stored(server, session_id).status_code == 404


BAD = [
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "role"),
    ({"messages": [{"role": "user", "content": "What is this?", "images": [b"\x89PNG\r\n\x1a\n"]}]}, "images"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "last message"),
    ({"messages": [{"role": "user", "content": "compute 6*7"}], "tools": [CALCULATOR]}, "tools"),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("values, mentions", BAD, ids=["role", "image", "last-role", "tools-on-llama-cpp"])
def test_bad_chat_requests_are_400_and_store_nothing(server, values, mentions, stream):
    session_id = new_session_id()
    client = ollama.Client(host=server.url, timeout=60, headers={"X-Jarvis-Session": session_id})
    before = session_count(server)
    with pytest.raises(ollama.ResponseError) as caught:
        result = client.chat(model=MODEL, stream=stream, **values)
        if stream:
            list(result)
    assert caught.value.status_code == 400
    assert mentions in caught.value.error and "Traceback" not in caught.value.error
    assert session_count(server) == before and stored(server, session_id).status_code == 404


def test_bad_generate_and_embed_requests_are_400(client):
    for call in (
        lambda: client.generate(model=MODEL, prompt="What is this?", images=[b"\x89PNG\r\n\x1a\n"]),
        lambda: client.embed(model=MODEL, input=[""]),
        lambda: client.chat(model=MODEL, messages=MESSAGES, options={"temperature": 3}),
    ):
        with pytest.raises(ollama.ResponseError) as caught:
            call()
        assert caught.value.status_code == 400


def test_stream_dropped_midway_leaves_the_server_healthy(client, server):
    session_id = new_session_id()
    body = {"model": MODEL, "messages": MESSAGES, "options": {"temperature": 0, "num_predict": 400}}
    with (
        httpx.Client(base_url=server.url, timeout=60) as http,
        http.stream("POST", "/api/chat", json=body, headers={"X-Jarvis-Session": session_id}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = []
        for line in response.iter_lines():
            lines.append(json.loads(line))
            if len(lines) == 2:
                break
    assert not any(line["done"] for line in lines)
    assert client.chat(model=MODEL, messages=MESSAGES, options={"temperature": 0, "num_predict": 4}).message.content
    deadline = time.monotonic() + 30
    while True:
        answer = stored(server, session_id).json()["messages"][-1]
        if answer["status"] != "streaming" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert answer["role"] == "assistant" and answer["status"] == "disconnected"
    assert (answer["completion_tokens"] or 0) < 400


# --- tools, passed through to an engine that can call them -------------------------------------


@pytest.fixture
def toolbot(make_settings):
    """A JARVIS server whose Ollama engine is the wire-format stand-in serving `toolbot` (behaviour `tools`)."""
    engine = OllamaServer({"toolbot": "tools"}).start()
    server = LiveServer(make_settings(ollama_host=engine.url, load_on_start=False)).start()
    try:
        yield server, engine
    finally:
        server.stop()
        engine.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_pass_through_to_the_client_and_back(toolbot, stream):
    server, engine = toolbot
    client = ollama.Client(host=server.url, timeout=60)
    messages = [{"role": "user", "content": "compute 6*7"}]
    if stream:
        parts = list(client.chat(model="ollama/toolbot", messages=messages, tools=[CALCULATOR], stream=True))
        calls = [call for p in parts for call in (p.message.tool_calls or [])]
        assert parts[-1].done
    else:
        response = client.chat(model="ollama/toolbot", messages=messages, tools=[CALCULATOR])
        calls = list(response.message.tool_calls or [])
        assert response.done
    (call,) = calls
    assert call.function.name == "calculator" and dict(call.function.arguments) == {"expression": "6*7"}
    assert [t["function"]["name"] for t in engine.requests[-1]["tools"]] == ["calculator"]

    messages += [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "calculator", "arguments": {"expression": "6*7"}}}],
        },
        {"role": "tool", "content": "42"},
    ]
    answer = client.chat(model="ollama/toolbot", messages=messages, tools=[CALCULATOR])
    assert answer.message.content == "The result is 42."
    sent = engine.requests[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["function"] == {"name": "calculator", "arguments": {"expression": "6*7"}}
    assert sent[-1]["role"] == "tool" and sent[-1]["content"] == "42"
