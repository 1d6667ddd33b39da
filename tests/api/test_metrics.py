"""`/metrics` in the Prometheus text format, read with the Prometheus client's own parser: it
counts what the test did (requests per route template, an answer with its first-token time and
speed), shows the engine's slots, the database pool and the event transport, and needs a key
when keys are set (or JARVIS_METRICS_TOKEN)."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jarvis.config import Settings
from tests.support.clients import client
from tests.support.live import LiveServer

GREEDY = {"temperature": 0, "max_tokens": 8}


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample as (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


async def scrape(http: httpx.AsyncClient) -> dict:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_metrics_count_what_the_test_did(server):
    async with client(server) as http:
        before = await scrape(http)
        answer = (await http.post("/api/chat/messages", json={"message": "Hello", **GREEDY})).json()
        session_path = f"/api/chat/sessions/{answer['session_id']}"
        for _ in range(2):
            assert (await http.get(session_path)).status_code == 200
        assert (await http.get("/api/chat/sessions/no-such-session")).status_code == 404
        assert (await http.get("/no/such/path/x1")).status_code == 404
        health = (await http.get("/api/health")).json()
        after = await scrape(http)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/api/chat/sessions/{session_id}"
    assert grew("jarvis_http_requests_total", method="GET", route=route, status="200") == 2
    assert grew("jarvis_http_requests_total", method="GET", route=route, status="404") == 1
    assert grew("jarvis_http_requests_total", method="POST", route="/api/chat/messages", status="200") == 1
    assert grew("jarvis_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert not any("no-such-session" in str(labels) or "x1" in str(labels) for _, labels in after)  # templates only
    assert grew("jarvis_http_request_duration_seconds_count", method="GET", route=route) == 3  # 200s and the 404

    engine = health["engine"]["name"]
    model = {"model": "gemma3:270m", "engine": engine}
    assert grew("jarvis_chat_answers_total", status="complete", **model) == 1
    assert grew("jarvis_chat_first_token_seconds_count", **model) == 1
    assert grew("jarvis_chat_first_token_seconds_sum", **model) == pytest.approx(answer["ttft_ms"] / 1000, rel=1e-3)
    assert grew("jarvis_chat_completion_tokens_total", **model) == answer["completion_tokens"]
    if answer["completion_tokens"] >= 2:
        assert grew("jarvis_chat_tokens_per_second_count", **model) == 1

    loaded = {"engine": engine, "model": "gemma3:270m"}
    assert value(after, "jarvis_engine_slots", **loaded) == health["slots"]["total"] >= 1
    assert value(after, "jarvis_engine_slots_busy", **loaded) == 0
    assert value(after, "jarvis_engine_queue_length", **loaded) == 0
    assert value(after, "jarvis_downloads_active") == 0
    assert value(after, "jarvis_db_pool_checked_out") >= 0 and ("jarvis_db_pool_size", frozenset()) in after
    backend = health["events"]["backend"]
    assert backend == ("local" if health["database"]["backend"] == "sqlite" else "postgres")
    assert value(after, "jarvis_events_connected", backend=backend) == 1


KEY = "metrics-test-key-1"
TOKEN = "scraper-token-123"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, models_dir):
    settings = Settings.build(
        env_file=None, data_dir=tmp_path_factory.mktemp("metrics-keyed"), models_path=models_dir,
        api_key=KEY, metrics_token=TOKEN, log_level="WARNING", default_model="gemma3:270m", load_on_start=False,
    )  # fmt: skip
    server = LiveServer(settings).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_only(tmp_path_factory, models_dir):
    settings = Settings.build(
        env_file=None, data_dir=tmp_path_factory.mktemp("metrics-token"), models_path=models_dir,
        metrics_token=TOKEN, log_level="WARNING", default_model="gemma3:270m", load_on_start=False,
    )  # fmt: skip
    server = LiveServer(settings).start()
    yield server
    server.stop()


async def test_metrics_need_a_key_or_the_metrics_token_when_keys_are_set(keyed):
    async with httpx.AsyncClient(base_url=keyed.url) as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await http.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})).status_code == 200
        scraped = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scraped.status_code == 200 and samples(scraped.text)
        # the metrics token reads /metrics and nothing else
        assert (await http.get("/api/chat/sessions", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 401


async def test_a_metrics_token_alone_is_needed_even_on_loopback(token_only):
    async with httpx.AsyncClient(base_url=token_only.url) as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200
        assert (await http.get("/api/chat/sessions")).status_code == 200  # the API itself as before
