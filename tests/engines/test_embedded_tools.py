"""Tools on the embedded engine with the real bundled instruct model (Qwen2.5-Coder 0.5B,
greedy): plugin tools run in the native chat, the caller's tools come back as `tool_calls`
in the OpenAI and Ollama shapes (streamed and not), and a call of a tool that was not
offered is never run. Also the base model's labels and its answers that stop."""

from __future__ import annotations

import json

import httpx
import pytest

from jarvis.config import DEFAULT_MODEL, Settings
from jarvis.engines.base import GenerationOptions
from jarvis.engines.llama_cpp import LlamaCppEngine
from jarvis.models.bundled import BUNDLED_NAME
from jarvis.models.store import ModelStore
from tests.support.clients import CALCULATOR
from tests.support.live import LiveServer

QWEN = DEFAULT_MODEL
QUESTION = "What is 1234 * 5678?"
GREEDY = {"temperature": 0, "max_tokens": 96}


@pytest.fixture(scope="module")
def qwen_server(tmp_path_factory, models_dir):
    """A server on the bundled default (the instruct model), SQLite."""
    settings = Settings.build(
        env_file=None,
        log_level="WARNING",
        data_dir=tmp_path_factory.mktemp("qwen-server"),
        models_path=models_dir,
        default_model=QWEN,
    )
    live = LiveServer(settings).start()
    yield live
    live.stop()


@pytest.fixture
def http(qwen_server):
    with httpx.Client(base_url=qwen_server.url, timeout=300) as client:
        yield client


async def test_the_engine_turns_the_models_tool_call_into_a_call(models_dir):
    engine = LlamaCppEngine(ModelStore(models_dir), n_ctx=4096)
    try:
        messages = [{"role": "user", "content": QUESTION}]
        chunks = [
            c
            async for c in engine.stream(QWEN, messages, GenerationOptions(temperature=0, max_tokens=96), [CALCULATOR])
        ]
        assert await engine.tools_supported(QWEN)
    finally:
        await engine.close()
    final = chunks[-1]
    assert final.finish_reason == "tool_calls"
    assert [(c["name"], c["arguments"]) for c in final.tool_calls] == [("calculator", {"expression": "1234 * 5678"})]
    assert "".join(c.text for c in chunks) == ""  # the markup never reaches the answer


def test_native_chat_runs_the_calculator_plugin_and_answers_with_its_result(http):
    reply = http.post("/api/chat/messages", json={"message": QUESTION, **GREEDY})
    assert reply.status_code == 200, reply.text
    message = reply.json()
    assert "7006652" in message["content"].replace(",", "")  # "1234 * 5678 → 7006652" or in words
    assert "<tool_call>" not in message["content"] and '"name"' not in message["content"]
    assert message["status"] == "complete"


def test_openai_chat_completions_return_tool_calls(http):
    body = {"model": QWEN, "messages": [{"role": "user", "content": QUESTION}], "tools": [CALCULATOR], **GREEDY}
    choice = http.post("/v1/chat/completions", json=body).json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"]
    assert call["function"]["name"] == "calculator"
    assert json.loads(call["function"]["arguments"]) == {"expression": "1234 * 5678"}

    with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
        events = [
            json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:") and "[DONE]" not in line
        ]
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    streamed = [c for d in deltas for c in d.get("tool_calls") or []]
    assert [c["function"]["name"] for c in streamed] == ["calculator"]
    assert json.loads(streamed[0]["function"]["arguments"]) == {"expression": "1234 * 5678"}
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"

    # the client runs the tool and sends the result back: the model answers with it
    answer = http.post(
        "/v1/chat/completions",
        json={
            **body,
            "messages": [
                {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call["id"], "content": "7006652"},
            ],
        },
    )
    assert answer.status_code == 200, answer.text


def test_ollama_chat_returns_tool_calls(http):
    body = {
        "model": QWEN,
        "messages": [{"role": "user", "content": QUESTION}],
        "tools": [CALCULATOR],
        "options": {"temperature": 0, "num_predict": 96},
    }
    done = http.post("/api/chat", json={**body, "stream": False}).json()
    assert done["message"]["tool_calls"] == [
        {"function": {"name": "calculator", "arguments": {"expression": "1234 * 5678"}}}
    ]

    with http.stream("POST", "/api/chat", json=body) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert lines[-1]["done"] is True
    assert lines[-1]["message"]["tool_calls"][0]["function"]["name"] == "calculator"
    assert "".join(line["message"]["content"] for line in lines) == ""


def test_a_tool_that_was_not_offered_is_never_called(http):
    """Offered only a calculator, the model (greedy) answers a weather question with a call of
    a `weather` tool: that call is refused, never handed out as a tool call."""
    body = {
        "model": QWEN,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [CALCULATOR],
        **GREEDY,
    }
    choice = http.post("/v1/chat/completions", json=body).json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert not choice["message"].get("tool_calls")
    assert "weather" in choice["message"]["content"]  # what the model wrote, shown as text


def test_the_instruct_default_answers_the_seeds_greeting_in_german_and_stops(http):
    reply = http.post("/api/v1/chat/", json={"message": "Hallo Jarvis! Wie geht es dir?", "temperature": 0})
    assert reply.status_code == 200, reply.text
    text = json.dumps(reply.json(), ensure_ascii=False)
    assert any(word in text for word in ("Hallo", "dir", "Ihnen", "ich"))
    stored = http.get("/api/chat/sessions").json()["sessions"][0]
    messages = http.get(f"/api/chat/sessions/{stored['id']}").json()["messages"]
    assert messages[-1]["finish_reason"] == "stop"


def test_models_are_labelled_base_or_instruct(http):
    models = {m["id"]: m for m in http.get("/api/models").json()["models"]}
    assert models[BUNDLED_NAME]["kind"] == "base" and models[BUNDLED_NAME]["capabilities"] == [
        "completion",
        "embedding",
    ]
    assert models[QWEN]["kind"] == "instruct"
    assert {"chat", "tools"} <= set(models[QWEN]["capabilities"])
    tags = {m["name"]: m for m in http.get("/api/tags").json()["models"]}
    assert "chat" not in tags[BUNDLED_NAME]["capabilities"] and "tools" in tags[QWEN]["capabilities"]
    shown = http.post("/api/show", json={"model": BUNDLED_NAME}).json()
    assert shown["capabilities"] == ["completion", "embedding"] and shown["template"] == ""
    assert "tools" in http.post("/api/show", json={"model": QWEN}).json()["capabilities"]


def test_tools_are_refused_for_a_base_model(http):
    body = {"model": BUNDLED_NAME, "messages": [{"role": "user", "content": QUESTION}], "tools": [CALCULATOR]}
    refused = http.post("/v1/chat/completions", json=body)
    assert refused.status_code == 400 and "tools" in refused.json()["error"]["message"]


def test_a_base_model_answer_ends_at_the_next_turn(http):
    reply = http.post(
        "/api/chat/messages",
        json={"message": "What is the capital of France?", "model": BUNDLED_NAME, "temperature": 0, "max_tokens": 200},
    ).json()
    assert reply["finish_reason"] == "stop"
    assert reply["content"] and "User:" not in reply["content"] and reply["completion_tokens"] < 200


async def test_the_next_turn_evaluates_only_what_is_new(models_dir):
    """A conversation's next turn starts from the cached prompt and answer of the last one, on
    Qwen and on Gemma 3 (sliding-window attention, kept full size so it can be cut back)."""
    engine = LlamaCppEngine(ModelStore(models_dir), n_ctx=4096)
    options = GenerationOptions(temperature=0, max_tokens=24)
    try:
        for model in (QWEN, BUNDLED_NAME):
            messages = [{"role": "user", "content": "Name a colour."}]
            first = [c async for c in engine.stream(model, messages, options)]
            messages += [
                {"role": "assistant", "content": "".join(c.text for c in first)},
                {"role": "user", "content": "And another one?"},
            ]
            second = [c async for c in engine.stream(model, messages, options)]
            assert second[-1].usage.cached_tokens >= first[-1].usage.prompt_tokens
            assert second[-1].usage.cached_tokens < second[-1].usage.prompt_tokens
    finally:
        await engine.close()
