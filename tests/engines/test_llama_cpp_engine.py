"""The embedded llama.cpp engine with the real bundled base model: exact greedy output (the same
as llama-cpp-python given the same transcript prompt and sampler settings), cancellation
within one token, first come first served when the slots are full."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing

import pytest
from llama_cpp import Llama

from jarvis.chat.prompt import TEMPLATE_TOKENS_PER_MESSAGE, TEMPLATE_TOKENS_PER_PROMPT
from jarvis.engines.base import GenerationOptions
from jarvis.engines.llama_cpp import LlamaCppEngine
from jarvis.engines.llama_cpp.prompt import TRANSCRIPT_STOPS, transcript
from jarvis.errors import ModelLoadError, ModelNotFound
from jarvis.models.store import Manifest, ModelStore
from tests.support.clients import LONG_ANSWER, client, sse, ws_session

PROMPT = [{"role": "user", "content": "Write a short poem about the sea."}]
GREEDY = GenerationOptions(temperature=0, max_tokens=48)
LONG = [{"role": "user", "content": LONG_ANSWER}]


@pytest.fixture(scope="module")
def raw_llm(bundled_path):
    """llama-cpp-python used directly, as a user of the raw library would."""
    llm = Llama(model_path=str(bundled_path), n_ctx=4096, verbose=False)
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def raw_answer(raw_llm) -> str:
    """The base model has no chat template: the engine sends a transcript with stop sequences
    and Ollama's default repeat penalty (1.1 over the last 64 tokens, llama-cpp-python's
    window); greedy, llama-cpp-python answers the same prompt with exactly this text."""
    return _raw_completion(raw_llm)["choices"][0]["text"].lstrip()


def _raw_completion(llm) -> dict:
    return llm.create_completion(
        transcript(PROMPT), temperature=0, repeat_penalty=1.1, max_tokens=48, stop=TRANSCRIPT_STOPS
    )


@pytest.fixture
async def engine(models_dir):
    engine = LlamaCppEngine(ModelStore(models_dir), n_ctx=4096, parallel=2)
    await engine.load("gemma3:270m")
    yield engine
    await engine.close()


async def test_greedy_stream_equals_raw_engine(engine, raw_answer, raw_llm):
    chunks = [c async for c in engine.stream("gemma3:270m", PROMPT, GREEDY)]
    assert raw_answer
    assert "".join(c.text for c in chunks) == raw_answer
    assert chunks[-1].finish_reason == "stop"  # the transcript's stop sequences end the answer
    assert chunks[-1].usage.completion_tokens == _raw_completion(raw_llm)["usage"]["completion_tokens"]


async def test_greedy_sse_and_websocket_equal_raw_engine(server, raw_answer):
    body = {"message": PROMPT[0]["content"], "temperature": 0, "max_tokens": 48}
    async with client(server) as http:
        events = await sse(http, "/api/chat/messages", {**body, "stream": True})
    assert "".join(d["content"] for name, d in events if name == "token") == raw_answer

    async with ws_session(server) as (ws, _):
        await ws.send({"type": "chat", "stream": True, **body})
        chunks, end = await ws.until("stream_end")
    assert "".join(c["content"] for c in chunks if c["type"] == "stream_chunk") == raw_answer
    assert end["full_response"] == raw_answer


async def test_closing_the_stream_stops_within_one_token(engine):
    options = GenerationOptions(temperature=0, max_tokens=300)
    loaded = engine.loaded
    prompt_tokens = await engine.count_prompt_tokens("gemma3:270m", LONG)
    received = 0
    async with aclosing(engine.stream("gemma3:270m", LONG, options)) as stream:
        async for _chunk in stream:
            received += 1
            if received == 5:
                break
    # The slot is free (the stream's close waited for it): count what its cache took in.
    # Each yielded token is fed back before the next is sampled; allow the one in flight.
    generated = max(len(slot.tokens) for slot in loaded.batcher.slots) - prompt_tokens
    assert generated <= received + 1
    assert engine.slots()["busy"] == 0


async def test_with_one_slot_answers_run_one_at_a_time_in_arrival_order(models_dir):
    engine = LlamaCppEngine(ModelStore(models_dir), n_ctx=4096, parallel=1)
    log: list[int] = []

    async def ask(index: int) -> None:
        async for chunk in engine.stream("gemma3:270m", PROMPT, GenerationOptions(temperature=0, max_tokens=6)):
            if chunk.text:
                log.append(index)

    try:
        await engine.load("gemma3:270m")
        tasks = []
        for index in range(3):
            tasks.append(asyncio.create_task(ask(index)))
            await asyncio.sleep(0)  # arrive in this order
        await asyncio.gather(*tasks)
    finally:
        await engine.close()
    # no interleaving, and first come first served
    runs = [index for position, index in enumerate(log) if position == 0 or log[position - 1] != index]
    assert runs == [0, 1, 2]


async def test_cancelling_the_consumer_task_frees_the_engine(engine):
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in engine.stream("gemma3:270m", LONG, GenerationOptions(temperature=0, max_tokens=300)):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    chunks = [c async for c in engine.stream("gemma3:270m", PROMPT, GenerationOptions(temperature=0, max_tokens=4))]
    assert chunks[-1].finish_reason


async def test_unknown_and_invalid_models(tmp_path):
    store = ModelStore(tmp_path / "store")
    engine = LlamaCppEngine(store)
    with pytest.raises(ModelNotFound):
        await engine.load("nope:1b")

    junk = b"<html>rate limited</html>" * 100
    digest = "sha256-" + "0" * 64
    store.blob_path(digest).write_bytes(junk)
    store.save(Manifest(name="junk", digest=digest, size=len(junk), source="test", file="junk.gguf"))
    with pytest.raises(ModelLoadError, match="not a valid GGUF"):
        await engine.load("junk")
    assert engine.loaded is None


async def test_truncated_gguf_is_refused_before_llama_cpp(tmp_path, bundled_path):
    store = ModelStore(tmp_path / "store")
    digest = "sha256-" + "1" * 64
    with bundled_path.open("rb") as source:
        store.blob_path(digest).write_bytes(source.read(4096))  # header cut short
    store.save(Manifest(name="cut", digest=digest, size=4096, source="test", file="cut.gguf"))
    with pytest.raises(ModelLoadError):
        await LlamaCppEngine(store).load("cut")
    assert json.loads((store.manifests / "cut.json").read_text())["name"] == "cut"


async def test_a_model_updated_under_its_name_is_loaded_anew(tmp_path, bundled_path):
    store = ModelStore(tmp_path / "store")
    for digest in ("sha256-" + "a" * 64, "sha256-" + "b" * 64):
        store.blob_path(digest).symlink_to(bundled_path)
    engine = LlamaCppEngine(store, n_ctx=512)
    try:
        store.save(Manifest(name="mine:1b", digest="sha256-" + "a" * 64, size=1, source="test", file="m.gguf"))
        first = await engine.load("mine:1b")
        assert await engine.load("mine:1b") is first  # unchanged: kept
        await engine.forget("other:1b")
        assert engine.loaded is first
        # pulled again with other files: the download manager tells the engine to forget it
        store.save(Manifest(name="mine:1b", digest="sha256-" + "b" * 64, size=1, source="test", file="m.gguf"))
        await engine.forget("mine:1b")
        assert engine.loaded is None
        await engine.count_prompt_tokens("mine:1b", PROMPT)  # its next use loads it anew
        second = engine.loaded
        assert second is not first and second.path == store.blob_path("sha256-" + "b" * 64)
    finally:
        await engine.close()


async def test_the_same_greedy_request_twice_gives_the_same_answer(engine):
    """llama-cpp-python's prefix reuse changes Gemma 3's answer on a repeat; the engine must not."""
    prompt = [{"role": "user", "content": "Hi"}]
    answers = []
    for _ in range(3):
        chunks = [c async for c in engine.stream("gemma3:270m", prompt, GenerationOptions(temperature=0, max_tokens=8))]
        answers.append("".join(c.text for c in chunks))
    assert answers[0] == answers[1] == answers[2]


async def test_system_prompt_reaches_a_model_without_template(engine):
    """llama-cpp-python's `gemma` format drops system messages; the transcript keeps them."""
    plain = await engine.count_prompt_tokens("gemma3:270m", PROMPT)
    with_system = await engine.count_prompt_tokens(
        "gemma3:270m", [{"role": "system", "content": "You are JARVIS, a helpful assistant."}, *PROMPT]
    )
    assert with_system > plain + 5


@pytest.mark.parametrize(
    "text",
    [
        "hi",
        "a b c d e f g",
        "Grüße aus München, äöü ß!",
        "数学是科学的语言。",
        "🙂🚀🎉" * 20,
        "\n\n\t  \n" * 30,
        "def f(x):\n    return {'k': [x, x**2]}\n" * 10,
        "<start_of_turn>user\n<end_of_turn>" * 5,
        "x" * 3000,
    ],
)
async def test_the_byte_bound_that_skips_counting_holds_for_the_real_tokenizer(engine, text):
    """chat/prompt.py skips tokenizing a prompt that fits by bytes plus template allowance: the
    real count must never exceed that bound, whatever the text."""
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": text},
        {"role": "assistant", "content": text[:50]},
        {"role": "user", "content": text},
    ]
    bound = TEMPLATE_TOKENS_PER_PROMPT + sum(len(m["content"].encode()) + TEMPLATE_TOKENS_PER_MESSAGE for m in messages)
    assert await engine.count_prompt_tokens("gemma3:270m", messages) <= bound


async def test_an_answer_caught_in_a_loop_is_stopped_and_marked(engine):
    """Raw, in Gemma's turn format, the base model repeats the greeting until the token cap
    (it did so with 512 tokens in every chat before); the loop guard ends it early."""
    prompt = "<start_of_turn>user\nHallo Jarvis! Wie geht es dir?<end_of_turn>\n<start_of_turn>model\n"
    for penalty in (None, 1.0):  # Ollama's repeat penalty does not break this loop; the guard does
        options = GenerationOptions(temperature=0, max_tokens=512, repeat_penalty=penalty)
        chunks = [c async for c in engine.complete("gemma3:270m", prompt, options)]
        text = "".join(c.text for c in chunks)
        assert chunks[-1].finish_reason == "repetition"
        assert chunks[-1].usage.completion_tokens < 128
        assert text.count("Hallo Jarvis!") >= 3
