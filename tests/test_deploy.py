"""The deployment of deploy/ without containers: Debian's nginx running deploy/nginx.conf in
front of two `jarvis serve` replicas on the run's PostgreSQL (and a real redis-server), all on
loopback. Through nginx a session's turns land on both replicas and read as one
conversation; an event raised on A reaches subscribers on B (over NOTIFY and over Redis,
over SSE and through nginx over WebSocket); kill -9 of the replica writing an answer leaves
the partial answer, which the client finds through nginx on the other, stored as interrupted."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import httpx
import pytest
from httpx_sse import aconnect_sse, connect_sse
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from jarvis.models.bundled import BUNDLED_NAME
from tests.cli import JARVIS, REPO, Running, running, server_env
from tests.support.clients import LONG_ANSWER
from tests.support.nginx import Nginx, find_nginx
from tests.support.postgres import free_port

WAIT = 10.0  # bounded wait for an event to cross (the issue asks for well under a second)
GREEDY = {"temperature": 0, "max_tokens": 8}

pytestmark = pytest.mark.skipif(find_nginx() is None, reason="nginx not installed (scripts/install.sh --dev)")


@dataclass
class Topology:
    nginx: Nginx
    replicas: list[Running]

    @property
    def url(self) -> str:
        return self.nginx.url


@contextmanager
def topology(root, models_dir, database_url: str, redis_url: str | None = None) -> Iterator[Topology]:
    ports = [free_port(), free_port()]
    extra = {"JARVIS_REDIS_URL": redis_url} if redis_url else {}
    with ExitStack() as stack:
        replicas = []
        for name, port in zip("ab", ports, strict=True):
            env = server_env(
                root / f"data-{name}", models_dir, JARVIS_DATABASE_URL=database_url,
                JARVIS_DEFAULT_MODEL=BUNDLED_NAME, JARVIS_REPLICA_ID=f"replica-{name}", JARVIS_PARALLEL="2", **extra,
            )  # fmt: skip
            command = [str(JARVIS), "serve", "--port", str(port)]
            replicas.append(
                stack.enter_context(running(command, port=port, env=env, cwd=REPO, log=root / f"{name}.log"))
            )
        nginx = Nginx.start(root / "nginx", ports)
        stack.callback(nginx.stop)
        yield Topology(nginx, replicas)


def database(postgres) -> str:
    return postgres.new_database("deploy")


@pytest.fixture(scope="module")
def over_notify(tmp_path_factory, models_dir, postgres):
    with topology(tmp_path_factory.mktemp("notify"), models_dir, database(postgres)) as running_topology:
        yield running_topology


@pytest.fixture(scope="module")
def over_redis(tmp_path_factory, models_dir, postgres, redis_server):
    """Events over Redis. The kill -9 test stops replica A of this one: it runs last here."""
    root = tmp_path_factory.mktemp("redis")
    with topology(root, models_dir, database(postgres), redis_server.url) as running_topology:
        yield running_topology


def requests_served(replica: Running, method: str, route: str) -> float:
    text = httpx.get(replica.url + "/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "jarvis_http_requests_total"
        and sample.labels.get("method") == method
        and sample.labels.get("route") == route
    )


def test_health_says_how_events_cross(over_notify, over_redis):
    for topo, backend in ((over_notify, "postgres"), (over_redis, "redis")):
        for name, replica in zip("ab", topo.replicas, strict=True):
            events = httpx.get(replica.url + "/api/health").json()["events"]
            assert events == {"backend": backend, "connected": True, "replica": f"replica-{name}"}


def test_a_sessions_turns_land_on_both_replicas_and_read_as_one_conversation(over_notify):
    route = "/api/chat/messages"
    before = [requests_served(r, "POST", route) for r in over_notify.replicas]
    with httpx.Client(base_url=over_notify.url, timeout=120) as http:
        first = http.post(route, json={"message": "Turn one", **GREEDY})
        assert first.status_code == 200, first.text
        session_id = first.json()["session_id"]
        answers = [first.json()]
        for turn in ("Turn two", "Turn three", "Turn four"):
            reply = http.post(route, json={"sessionId": session_id, "message": turn, **GREEDY})
            assert reply.status_code == 200, reply.text
            answers.append(reply.json())
        through_nginx = http.get(f"/api/chat/sessions/{session_id}").json()
    served = [requests_served(r, "POST", route) - b for r, b in zip(over_notify.replicas, before, strict=True)]
    assert sum(served) == 4 and min(served) >= 1, served  # both replicas answered turns

    messages = through_nginx["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 4
    assert [m["content"] for m in messages[::2]] == ["Turn one", "Turn two", "Turn three", "Turn four"]
    assert [m["id"] for m in messages[1::2]] == [a["id"] for a in answers]
    assert all(m["status"] == "complete" for m in messages)
    assert messages[-1]["prompt_tokens"] > messages[1]["prompt_tokens"]  # later turns carried the earlier ones
    for replica in over_notify.replicas:  # each replica reads the same conversation
        assert httpx.get(f"{replica.url}/api/chat/sessions/{session_id}").json()["messages"] == messages


async def crosses(topo: Topology) -> None:
    """A memory created on A reaches an SSE subscriber on B; a WebSocket subscriber reached
    through nginx hears memories created on either replica."""
    a, b = topo.replicas
    words = [f"deploy-{uuid.uuid4().hex[:12]}" for _ in range(2)]
    async with (
        httpx.AsyncClient(timeout=60) as http,
        aconnect_sse(http, "GET", f"{b.url}/api/events", params={"types": "memory"}) as source,
        connect(topo.nginx.ws_url) as socket,
    ):
        sse = source.aiter_sse()
        assert (await anext(sse)).event == "ready"
        assert json.loads(await socket.recv())["type"] == "connection"
        await socket.send(json.dumps({"type": "subscribe", "events": ["memory.created"]}))
        assert json.loads(await socket.recv())["type"] == "subscribed"

        created = await http.post(f"{a.url}/api/memory", json={"content": f"The code word is {words[0]}"})
        assert created.status_code == 201, created.text

        async def on_b() -> dict:
            async for event in sse:
                if event.event == "memory.created":
                    return json.loads(event.data)
            raise AssertionError("the stream ended")

        heard = await asyncio.wait_for(on_b(), WAIT)
        assert heard["id"] == created.json()["id"] and words[0] in heard["content"]

        other = await http.post(f"{b.url}/api/memory", json={"content": f"The code word is {words[1]}"})
        assert other.status_code == 201
        frames = []
        while len(frames) < 2:
            frame = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
            if frame["type"] == "event":
                frames.append(frame["data"]["content"])
        assert [w in f for w, f in zip(words, frames, strict=True)] == [True, True]


def test_an_event_on_a_reaches_subscribers_on_b_over_notify(over_notify):
    asyncio.run(crosses(over_notify))


def test_an_event_on_a_reaches_subscribers_on_b_over_redis(over_redis):
    asyncio.run(crosses(over_redis))
    metrics = httpx.get(over_redis.replicas[1].url + "/metrics").text
    lag = {
        s.name: s.value
        for f in text_string_to_metric_families(metrics)
        for s in f.samples
        if s.labels.get("backend") == "redis"
    }
    assert lag["jarvis_event_fanout_lag_seconds_count"] >= 1 and lag["jarvis_events_received_total"] >= 1


def busy_slots(replica: Running) -> int:
    return (httpx.get(replica.url + "/api/health").json()["slots"] or {}).get("busy", 0)


def test_kill_9_of_the_replica_writing_an_answer(over_redis):
    """Runs last on `over_redis`: replica A (whichever nginx chose) is gone afterwards."""
    body = {"message": LONG_ANSWER, "stream": True, "temperature": 0, "max_tokens": 2000}
    received = ""
    victim = None
    with (
        httpx.Client(timeout=60) as http,
        connect_sse(http, "POST", over_redis.url + "/api/chat/messages", json=body) as source,
    ):
        started_at = None
        for event in source.iter_sse():
            if event.event == "start":
                start = json.loads(event.data)
            elif event.event == "token":
                received += json.loads(event.data)["content"]
                if victim is None:  # the replica writing it is the one with a busy slot
                    started_at = time.monotonic()
                    busy = [r for r in over_redis.replicas if busy_slots(r)]
                    assert len(busy) == 1, [r.output() for r in over_redis.replicas]
                    victim = busy[0]
                elif time.monotonic() - started_at > 2.5:  # past the first flushes of the answer
                    # killed while the client still reads: leaving the loop hangs up, which
                    # the replica would record as `disconnected` if it lived a moment longer
                    victim.process.send_signal(signal.SIGKILL)
                    break
    victim.process.wait(timeout=30)

    # the client comes back through nginx: only the survivor answers, and it has marked the
    # dead replica's answer interrupted (its lock went with its connection)
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=over_redis.url, timeout=30) as http:
        while True:
            response = http.get(f"/api/chat/sessions/{start['session_id']}")
            assert response.status_code == 200, response.text
            user, answer = response.json()["messages"]
            if answer["status"] != "streaming":
                break
            assert time.monotonic() < deadline, "the answer was never marked interrupted"
            time.sleep(0.2)
    assert user["content"] == body["message"] and user["status"] == "complete"
    assert answer["id"] == start["message_id"] and answer["status"] == "interrupted"
    assert answer["content"] and received.startswith(answer["content"])
