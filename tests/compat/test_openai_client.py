"""The OpenAI-compatible API (`/v1`) driven by the official `openai` Python package against a
real server on loopback with the bundled model (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import openai
import pytest

from jarvis.models.bundled import BUNDLED_NAME
from tests.support.clients import CALCULATOR
from tests.support.live import LiveServer
from tests.support.ollama_server import OllamaServer

MODEL = BUNDLED_NAME
PROMPT = [{"role": "user", "content": "Write a short poem about the sea."}]
GREEDY = {"temperature": 0, "max_tokens": 16}


@pytest.fixture
def client(server):
    with openai.OpenAI(base_url=server.url + "/v1", api_key="not-needed", max_retries=0, timeout=120) as client:
        yield client


def session_count(server) -> int:
    return httpx.get(server.url + "/api/chat/sessions", timeout=30).json()["total"]


def stored(server, session_id: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/chat/sessions/{session_id}", timeout=30)


def new_session_id() -> str:
    return f"s1-{uuid.uuid4().hex[:8]}"


# --- models --------------------------------------------------------------------------


def test_models_list_names_the_bundled_model(client):
    models = client.models.list()
    assert MODEL in [m.id for m in models.data]
    assert all(m.object == "model" for m in models.data)
    assert client.models.retrieve(MODEL).id == MODEL


# --- chat completions -------------------------------------------------------------------


def test_chat_completion_has_content_usage_and_finish_reason(client):
    completion = client.chat.completions.create(model=MODEL, messages=PROMPT, **GREEDY)
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == MODEL
    (choice,) = completion.choices
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.message.tool_calls is None
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= GREEDY["max_tokens"]
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_max_tokens_cuts_the_answer_with_finish_reason_length(client):
    completion = client.chat.completions.create(model=MODEL, messages=PROMPT, temperature=0, max_tokens=3)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3
    newer = client.chat.completions.create(model=MODEL, messages=PROMPT, temperature=0, max_completion_tokens=3)
    assert newer.choices[0].message.content == completion.choices[0].message.content


def test_streamed_text_equals_the_non_streamed_text_at_temperature_0(client):
    whole = client.chat.completions.create(model=MODEL, messages=PROMPT, **GREEDY)
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=PROMPT, stream=True, stream_options={"include_usage": True}, **GREEDY
        )
    )
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) > 1  # token by token, not one lump
    streamed = "".join(c.choices[0].delta.content for c in content)
    assert streamed == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    usage = chunks[-1].usage  # include_usage: a last chunk with no choices
    assert chunks[-1].choices == [] and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (whole.usage.prompt_tokens, whole.usage.completion_tokens)


def test_stream_without_include_usage_has_no_usage_chunk(client):
    chunks = list(
        client.chat.completions.create(model=MODEL, messages=PROMPT, stream=True, temperature=0, max_tokens=4)
    )
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stop_sequence_ends_the_answer_before_it(client):
    text = client.chat.completions.create(model=MODEL, messages=PROMPT, **GREEDY).choices[0].message.content
    words = text.split()
    assert len(words) >= 4, text
    stop = next(w for w in words[2:] if text.index(w) > 0)
    expected = text[: text.index(stop)]
    completion = client.chat.completions.create(model=MODEL, messages=PROMPT, stop=[stop], **GREEDY)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content == expected
    assert stop not in completion.choices[0].message.content
    streamed = client.chat.completions.create(model=MODEL, messages=PROMPT, stop=stop, stream=True, **GREEDY)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == expected


def test_seed_makes_sampling_repeatable(client):
    def sample(seed: int) -> str:
        completion = client.chat.completions.create(
            model=MODEL, messages=PROMPT, temperature=1.0, top_p=0.95, seed=seed, max_tokens=16
        )
        return completion.choices[0].message.content

    first = sample(1234)
    assert sample(1234) == first
    assert len({first, sample(1), sample(2), sample(3)}) > 1  # the seed is what fixed it


def test_response_format_json_object_gives_json(client):
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Give me a JSON object with a key 'color'."}],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=48,
    )
    content = completion.choices[0].message.content
    if completion.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(content), dict | list)
    else:  # cut by max_tokens: at least it started as JSON
        assert content.lstrip()[:1] in "{["


def test_a_whole_conversation_is_sent_each_time(client):
    messages = [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi! How can I help?"},
        {"role": "user", "content": [{"type": "text", "text": "Name a color."}]},
    ]
    completion = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=8)
    assert completion.choices[0].message.content
    assert completion.usage.prompt_tokens > 10


def test_plugin_commands_work_through_the_openai_api(client):
    completion = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "/calc 6*7"}])
    assert "42" in completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"


# --- completions and embeddings ------------------------------------------------------


def test_completions_streaming_and_not(client):
    prompt = "The capital of France is"
    completion = client.completions.create(model=MODEL, prompt=prompt, temperature=0, max_tokens=8)
    assert completion.object == "text_completion"
    (choice,) = completion.choices
    assert choice.text and choice.finish_reason in ("stop", "length")
    assert completion.usage.prompt_tokens > 0 and 0 < completion.usage.completion_tokens <= 8
    streamed = client.completions.create(model=MODEL, prompt=prompt, temperature=0, max_tokens=8, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == choice.text


def test_embeddings_float_and_the_clients_default_base64(client):
    texts = ["The cat sat on the mat.", "Stock markets fell sharply."]
    floats = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1]
    assert all(len(d.embedding) == 640 for d in floats.data)
    assert floats.usage.prompt_tokens > 0
    default = client.embeddings.create(model=MODEL, input=texts)  # the client asks for base64 and decodes it
    for a, b in zip(floats.data, default.data, strict=True):
        assert len(b.embedding) == 640
        assert b.embedding == pytest.approx(a.embedding, rel=1e-5, abs=1e-6)
    single = client.embeddings.create(model=MODEL, input="The cat sat on the mat.", encoding_format="float")
    assert single.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-4, abs=1e-5)


# --- the session header ----------------------------------------------------------------


def test_session_header_stores_the_exchange_and_no_header_stores_nothing(client, server):
    before = session_count(server)
    client.chat.completions.create(model=MODEL, messages=PROMPT, temperature=0, max_tokens=4)
    list(client.chat.completions.create(model=MODEL, messages=PROMPT, temperature=0, max_tokens=4, stream=True))
    assert session_count(server) == before

    session_id = new_session_id()
    answer = (
        client.chat.completions.create(
            model=MODEL, messages=PROMPT, temperature=0, max_tokens=4, extra_headers={"X-Jarvis-Session": session_id}
        )
        .choices[0]
        .message.content
    )
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model=MODEL,
            messages=[
                *PROMPT,
                {"role": "assistant", "content": answer},
                {"role": "user", "content": "Shorter, please."},
            ],
            temperature=0,
            max_tokens=4,
            stream=True,
            extra_headers={"X-Jarvis-Session": session_id},
        )
        if c.choices
    )
    assert session_count(server) == before + 1
    messages = stored(server, session_id).json()["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", PROMPT[0]["content"]),
        ("assistant", answer),
        ("user", "Shorter, please."),
        ("assistant", streamed),
    ]
    assert all(m["status"] == "complete" for m in messages)


# --- bad input -----------------------------------------------------------------------------


BAD = [
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages"),
    (
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
            ]
        },
        "image_url",
    ),
    (
        {
            "messages": [],
        },
        "messages",
    ),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "last message"),
    ({"messages": PROMPT, "n": 2}, "n"),
    ({"messages": PROMPT, "max_tokens": -1}, "max_tokens"),
    ({"messages": PROMPT, "temperature": 3}, "temperature"),
    ({"messages": PROMPT, "top_p": 0}, "top_p"),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "values, mentions", BAD, ids=["role", "image", "empty", "last-role", "n2", "negative-max", "temp3", "top_p0"]
)
def test_bad_chat_requests_are_400_invalid_request_error_and_store_nothing(client, server, values, mentions, stream):
    session_id = new_session_id()
    before = session_count(server)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, stream=stream, extra_headers={"X-Jarvis-Session": session_id}, **values
        )
    error = caught.value
    assert error.status_code == 400
    assert error.body["type"] == "invalid_request_error" and mentions in error.body["message"]
    assert "Traceback" not in error.response.text
    assert session_count(server) == before
    assert stored(server, session_id).status_code == 404


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model_is_404_model_not_found(client, server, stream):
    session_id = new_session_id()
    before = session_count(server)
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="no-such-model", messages=PROMPT, stream=stream, extra_headers={"X-Jarvis-Session": session_id}
        )
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    assert caught.value.body["type"] == "invalid_request_error"
    assert session_count(server) == before and stored(server, session_id).status_code == 404
    for call in (
        lambda: client.completions.create(model="no-such-model", prompt="hi"),
        lambda: client.embeddings.create(model="no-such-model", input="hi"),
        lambda: client.models.retrieve("no-such-model"),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.code == "model_not_found"


def test_bad_completion_and_embedding_requests(client):
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt="hi", n=2)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt="", max_tokens=4)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MODEL, input=[""])
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MODEL, input="hi", dimensions=12)


def test_tools_on_the_llama_cpp_model_are_refused(client, server):
    session_id = new_session_id()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "compute 6*7"}],
            tools=[CALCULATOR],
            extra_headers={"X-Jarvis-Session": session_id},
        )
    assert "tools" in caught.value.body["message"]
    assert stored(server, session_id).status_code == 404


def test_stream_dropped_midway_leaves_the_server_healthy(client, server):
    session_id = new_session_id()
    body = {"model": MODEL, "messages": PROMPT, "stream": True, "temperature": 0, "max_tokens": 400}
    with (
        httpx.Client(base_url=server.url, timeout=60) as http,
        http.stream("POST", "/v1/chat/completions", json=body, headers={"X-Jarvis-Session": session_id}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = []
        for line in response.iter_lines():
            if line.startswith("data:"):
                chunks.append(json.loads(line[5:]))
                if len(chunks) == 2:
                    break
    # the connection is closed here, long before 400 tokens
    assert chunks[0]["object"] == "chat.completion.chunk"
    completion = client.chat.completions.create(model=MODEL, messages=PROMPT, temperature=0, max_tokens=4)
    assert completion.choices[0].message.content
    # the cut answer is kept as what it is: partial, and marked as such
    deadline = time.monotonic() + 30
    while True:
        answer = stored(server, session_id).json()["messages"][-1]
        if answer["status"] != "streaming" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert answer["role"] == "assistant" and answer["status"] == "disconnected"
    assert (answer["completion_tokens"] or 0) < 400
    assert httpx.get(server.url + "/api/health", timeout=30).json()["status"] == "ok"


# --- tools, passed through to an engine that can call them ---------------------------------


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
    with openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=60) as client:
        messages = [{"role": "user", "content": "compute 6*7"}]
        if stream:
            chunks = list(
                client.chat.completions.create(
                    model="ollama/toolbot", messages=messages, tools=[CALCULATOR], stream=True
                )
            )
            calls = [call for c in chunks if c.choices for call in (c.choices[0].delta.tool_calls or [])]
            finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
            (call,) = calls
            assert call.index == 0
        else:
            completion = client.chat.completions.create(model="ollama/toolbot", messages=messages, tools=[CALCULATOR])
            (call,) = completion.choices[0].message.tool_calls
            finish = [completion.choices[0].finish_reason]
        assert finish == ["tool_calls"]
        assert call.type == "function" and call.id
        assert call.function.name == "calculator" and json.loads(call.function.arguments) == {"expression": "6*7"}
        # the client's own tool went to the engine, not the server's plugin tools
        assert [t["function"]["name"] for t in engine.requests[-1]["tools"]] == ["calculator"]

        messages += [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": "calculator", "arguments": call.function.arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "42"},
        ]
        answer = client.chat.completions.create(model="ollama/toolbot", messages=messages, tools=[CALCULATOR])
        assert answer.choices[0].message.content == "The result is 42."
        assert answer.choices[0].finish_reason == "stop"
        sent = engine.requests[-1]["messages"]
        assert sent[-2]["tool_calls"][0]["function"] == {"name": "calculator", "arguments": {"expression": "6*7"}}
        assert sent[-1]["role"] == "tool" and sent[-1]["content"] == "42"
