"""The inference fleet against real upstreams: llama-cpp-python's own OpenAI-compatible server
(`python -m llama_cpp.server`), two or three of them on loopback serving the bundled model.
Which upstream answered is read from each server's own access log."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import ValidationError

from jarvis.config import Settings, Upstream
from jarvis.engines.base import Chunk, GenerationOptions
from jarvis.engines.fleet import Fleet
from jarvis.errors import EngineError, EngineUnavailable, ModelNotFound
from tests.support.live import LiveServer
from tests.support.llama_server import LlamaCppServer
from tests.support.ollama_server import OllamaServer
from tests.support.postgres import free_port

MODEL_ID = "google/gemma-3-270m-it"
MESSAGES = [{"role": "user", "content": "Name three colours."}]
SHORT = GenerationOptions(temperature=0.0, max_tokens=8)


@pytest.fixture(scope="module")
def pair(bundled_path):
    """Two upstreams serving the same model."""
    servers = [LlamaCppServer(bundled_path, alias=MODEL_ID, n_ctx=512).start() for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def victim(bundled_path):
    """An upstream of its own, for a test to kill."""
    server = LlamaCppServer(bundled_path, alias=MODEL_ID, n_ctx=512).start()
    yield server
    server.stop()


def upstream(server: LlamaCppServer | str, name: str, **fields) -> Upstream:
    url = server if isinstance(server, str) else server.base_url
    return Upstream(url=url, kind="openai", name=name, **fields)


@pytest.fixture
async def make_fleet():
    fleets: list[Fleet] = []

    def make(*upstreams: Upstream) -> Fleet:
        fleets.append(Fleet.of("openai", list(upstreams)))
        return fleets[-1]

    yield make
    for fleet in fleets:
        await fleet.close()


def counts(servers: list[LlamaCppServer]) -> list[int]:
    return [server.requests() for server in servers]


async def answer(fleet: Fleet, model: str = MODEL_ID, options: GenerationOptions = SHORT) -> list[Chunk]:
    return [chunk async for chunk in fleet.stream(model, MESSAGES, options)]


def text(chunks: list[Chunk]) -> str:
    return "".join(chunk.text for chunk in chunks)


async def test_answers_take_turns_between_idle_upstreams(pair, make_fleet):
    fleet = make_fleet(upstream(pair[0], "a"), upstream(pair[1], "b"))
    before = counts(pair)

    listed = [server.requests("/v1/models", method="GET") for server in pair]

    answers = [await answer(fleet) for _ in range(4)]

    assert [after - start for after, start in zip(counts(pair), before, strict=True)] == [2, 2]
    assert [server.requests("/v1/models", method="GET") - n for server, n in zip(pair, listed, strict=True)] == [1, 1]
    assert len({text(chunks) for chunks in answers}) == 1 and text(answers[0])
    assert [status["outstanding"] for status in fleet.status()] == [0, 0]


async def test_the_upstream_with_fewer_answers_outstanding_goes_first(pair, make_fleet):
    fleet = make_fleet(upstream(pair[0], "a"), upstream(pair[1], "b"))
    held = fleet.stream(MODEL_ID, MESSAGES, SHORT)
    await anext(held)  # an answer under way on one upstream
    busy, idle = (0, 1) if fleet.status()[0]["outstanding"] == 1 else (1, 0)
    assert [status["outstanding"] for status in fleet.status()] == [int(i == busy) for i in range(2)]
    before = counts(pair)

    for _ in range(3):
        await answer(fleet)

    assert pair[idle].requests() - before[idle] == 3
    assert pair[busy].requests() == before[busy]
    await held.aclose()
    assert [status["outstanding"] for status in fleet.status()] == [0, 0]


async def test_a_model_filter_keeps_a_model_to_the_upstreams_that_list_it(pair, make_fleet):
    fleet = make_fleet(upstream(pair[0], "a", models=["other-model"]), upstream(pair[1], "b", models=["google/*"]))
    before = counts(pair)

    for _ in range(2):
        await answer(fleet)
    with pytest.raises(ModelNotFound, match="no model 'gemma3'"):
        await fleet.serving("gemma3")

    assert [after - start for after, start in zip(counts(pair), before, strict=True)] == [0, 2]
    assert [(m.name, m.engine) for m in await fleet.list_models()] == [(MODEL_ID, "openai")]


async def test_a_killed_upstream_is_failed_over_before_the_answer_starts(pair, victim, make_fleet):
    fleet = make_fleet(upstream(victim, "victim"), upstream(pair[0], "a"))
    assert await fleet.serving(MODEL_ID)  # both listed the model (cached)
    victim.kill()
    before = pair[0].requests()

    answers = [await answer(fleet) for _ in range(2)]  # turns: one of them tries the victim first

    assert all(chunks[-1].finish_reason in ("stop", "length") and text(chunks) for chunks in answers)
    assert pair[0].requests() - before == 2
    assert [(status["name"], status["up"]) for status in fleet.status()] == [("victim", False), ("a", True)]


async def test_a_request_every_upstream_refuses_with_500_is_tried_on_each_then_is_their_error(pair, make_fleet):
    fleet = make_fleet(upstream(pair[0], "a"), upstream(pair[1], "b"))
    before = counts(pair)

    # This peer answers a request it finds invalid with 500 (an OpenAI-style body).
    with pytest.raises(EngineError, match=r"(?s)openai answered 500: .*top_p") as raised:
        await answer(fleet, options=GenerationOptions(max_tokens=4, top_p=7.0))

    assert raised.value.status_code == 502
    assert [after - start for after, start in zip(counts(pair), before, strict=True)] == [1, 1]
    assert [status["up"] for status in fleet.status()] == [True, True]  # refusing is not being down


async def test_an_upstream_failing_mid_answer_is_not_failed_over(pair, victim, make_fleet):
    fleet = make_fleet(upstream(victim, "victim", models=["google/*"]))
    long = GenerationOptions(temperature=0.0, max_tokens=400)
    chunks = fleet.stream(MODEL_ID, [{"role": "user", "content": "Write a long story about a dragon."}], long)
    assert (await anext(chunks)).text
    victim.kill()

    with pytest.raises(EngineError):
        async for _chunk in chunks:
            pass


async def test_both_upstreams_down_is_engine_unavailable(victim, make_fleet):
    victim.kill()
    nobody = f"http://127.0.0.1:{free_port()}/v1"
    listing = make_fleet(upstream(victim, "victim"), upstream(nobody, "nobody"))
    filtered = make_fleet(upstream(victim, "victim", models=["google/*"]), upstream(nobody, "nobody", models=["*"]))

    with pytest.raises(EngineUnavailable, match="victim, nobody"):
        await listing.serving(MODEL_ID)
    with pytest.raises(EngineUnavailable, match="not reachable"):
        await answer(filtered)
    assert [status["up"] for status in filtered.status()] == [False, False]


# Through JARVIS: the chat API and the OpenAI-compatible one, health.


@pytest.fixture
def jarvis_on(make_settings):
    servers: list[LiveServer] = []

    def start(*upstreams: Upstream) -> LiveServer:
        settings = make_settings(upstreams=[u.model_dump() for u in upstreams], load_on_start=False)
        servers.append(LiveServer(settings).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


async def test_chat_answers_from_the_upstream_left_and_health_shows_the_fleet(pair, victim, jarvis_on):
    # With model filters no list is asked for: the answers themselves find the victim gone.
    jarvis = jarvis_on(upstream(victim, "victim", models=["google/*"]), upstream(pair[1], "b", models=["google/*"]))
    victim.kill()
    before = pair[1].requests()
    async with httpx.AsyncClient(base_url=jarvis.url, timeout=120) as client:
        for _ in range(2):
            response = await client.post(
                "/api/chat/messages",
                json={
                    "message": "Name three colours.",
                    "model": f"openai/{MODEL_ID}",
                    "temperature": 0,
                    "max_tokens": 8,
                },
            )
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "complete" and response.json()["content"]
        health = (await client.get("/api/health")).json()

    assert pair[1].requests() - before == 2
    assert health["remote_engines"] == ["openai"]
    assert [(u["name"], u["kind"], u["up"], u["outstanding"]) for u in health["upstreams"]] == [
        ("victim", "openai", False, 0),
        ("b", "openai", True, 0),
    ]


async def test_both_down_is_a_503_in_the_error_format(victim, jarvis_on):
    victim.kill()
    nobody = f"http://127.0.0.1:{free_port()}/v1"
    jarvis = jarvis_on(upstream(victim, "victim", models=["google/*"]), upstream(nobody, "nobody"))
    async with httpx.AsyncClient(base_url=jarvis.url, timeout=120) as client:
        chat = await client.post("/api/chat/messages", json={"message": "hi", "model": f"openai/{MODEL_ID}"})
        compat = await client.post(
            "/v1/chat/completions",
            json={"model": f"openai/{MODEL_ID}", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
        )

    for response in (chat, compat):
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "engine_unavailable" and "not reachable" in error["message"]
        assert "Traceback" not in response.text


async def test_ollama_upstreams_beside_ollama_host_and_a_failure_mid_answer_stays_the_answers(make_settings):
    # Ollama itself cannot run here: two stand-ins speaking its wire format (tests/support/ollama_server.py).
    first = OllamaServer({"echo": "echo", "broken": "broken"}).start()
    second = OllamaServer({"echo": "echo", "broken": "broken", "only-second": "echo"}).start()
    second_upstream = Upstream(url=second.url, kind="ollama", name="second")
    settings = make_settings(ollama_host=first.host, upstreams=[second_upstream.model_dump()], load_on_start=False)
    jarvis = LiveServer(settings).start()
    try:
        async with httpx.AsyncClient(base_url=jarvis.url, timeout=60) as client:
            for model in ("ollama/echo", "ollama/echo", "ollama/only-second"):
                response = await client.post("/api/chat/messages", json={"message": "hi", "model": model})
                assert response.status_code == 200, response.text
            broken = await client.post("/api/chat/messages", json={"message": "hi", "model": "ollama/broken"})
            assert broken.status_code == 502, broken.text
            error = broken.json()["error"]
            session = (await client.get(f"/api/chat/sessions/{error['session_id']}")).json()
            health = (await client.get("/api/health")).json()
    finally:
        jarvis.stop()
        first.stop()
        second.stop()

    asked = [[body["model"] for body in server.requests] for server in (first, second)]
    assert sorted(asked[0] + asked[1]) == ["broken", "echo", "echo", "only-second"]  # broken: no second try
    assert "echo" in asked[0] and "echo" in asked[1] and "only-second" in asked[1]
    assert error["code"] == "engine_error" and "unexpected EOF" in error["message"]
    assert (session["messages"][-1]["status"], session["messages"][-1]["content"]) == ("error", "Partial")
    assert [(u["name"], u["kind"], u["up"]) for u in health["upstreams"]] == [
        ("OLLAMA_HOST", "ollama", True),
        ("second", "ollama", True),
    ]


# Settings


def test_upstreams_are_a_json_list(monkeypatch):
    monkeypatch.setenv(
        "JARVIS_UPSTREAMS",
        json.dumps([{"url": "http://10.0.0.2:8000/v1", "kind": "openai", "key": "sk-x", "models": ["qwen*"]}]),
    )
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1")
    monkeypatch.setenv("JARVIS_OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    fleet = Settings(_env_file=None).fleet

    assert [(u.label, u.kind, u.url, u.models) for u in fleet] == [
        ("OLLAMA_HOST", "ollama", "http://127.0.0.1:11434", None),
        ("JARVIS_OPENAI_BASE_URL", "openai", "http://127.0.0.1:8000/v1", None),
        ("http://10.0.0.2:8000/v1", "openai", "http://10.0.0.2:8000/v1", ["qwen*"]),
    ]
    assert "sk-x" not in repr(fleet)


def test_an_upstream_without_a_name_is_shown_by_its_url_without_credentials():
    assert Upstream(url="http://me:secret@gpu1:8000/v1", kind="openai").label == "http://gpu1:8000/v1"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("http://a:1/v1", "must be a JSON list"),
        ('{"url": "http://a:1/v1", "kind": "openai"}', "valid list"),
        ('[{"url": "http://a:1/v1", "kind": "vllm"}]', "'openai' or 'ollama'"),
        ('[{"url": "a:1", "kind": "openai"}]', "pattern"),
        ('[{"kind": "openai"}]', "url\n  Field required"),
        ('[{"url": "http://a:1/v1", "kind": "openai", "modles": ["x"]}]', "Extra inputs"),
        ('[{"url": "http://a:1/v1", "kind": "openai", "models": []}]', "at least 1 item"),
        ('[{"url": "http://a:1", "kind": "ollama"}, {"url": "http://a:1", "kind": "ollama"}]', "repeated"),
    ],
)
def test_a_bad_upstreams_setting_is_a_clear_error_at_start(monkeypatch, value, says):
    monkeypatch.setenv("JARVIS_UPSTREAMS", value)
    with pytest.raises(ValidationError, match="JARVIS_UPSTREAMS") as raised:
        Settings(_env_file=None)
    assert says in str(raised.value)
