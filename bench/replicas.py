"""Replicas: how fast an event crosses from one to the other, and what a second replica adds
to chat throughput through nginx.

Run by hand (never by pytest):
    .venv/bin/python bench/replicas.py [--events 200] [--clients 16] [--seconds 15] [--models-dir DIR]

Everything on loopback, as tests/test_deploy.py: a PostgreSQL cluster of its own, a real
redis-server, two `jarvis serve` replicas (no model loaded) on one database, Debian's nginx
running deploy/nginx.conf in front of them, and the Ollama stand-in of the tests
(tests/support/ollama_server.py, its `echo` model, in a process of its own) as the engine, so
the engine is not the limit.

  events      `--events` memories created one after another on replica A (`POST /api/memory`)
              while `/api/events` SSE subscribers listen on A and on B. Latency = arrival at the
              subscriber minus the start of the POST. A's subscriber is the local baseline;
              B's is what crossing adds, over PostgreSQL LISTEN/NOTIFY and over Redis pub/sub.
              p50 and p99 of each.
  throughput  `--clients` clients sending chat turns (`POST /api/chat/messages`, answer not
              streamed, model `ollama/echo`) for `--seconds`, through nginx in front of one
              replica, then of two. Goal: two replicas >= 1.8x one, where the cores allow:
              on a 2-core machine the clients, nginx, PostgreSQL and the stand-in share the
              cores with the replicas, so the ratio says more about the machine than the design.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from jarvis.models.bundled import ensure_bundled  # noqa: E402
from jarvis.models.store import ModelStore  # noqa: E402
from tests.cli import JARVIS, running, server_env  # noqa: E402
from tests.support.nginx import Nginx  # noqa: E402
from tests.support.postgres import PostgresCluster, find_bindir, free_port  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402

STAND_IN = """
import sys, time
from tests.support.ollama_server import OllamaServer
server = OllamaServer({"echo": "echo"}).start()
print(server.host, flush=True)
while True:
    time.sleep(3600)
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_stand_in(stack: ExitStack) -> str:
    process = subprocess.Popen(
        [sys.executable, "-c", STAND_IN], cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    stack.callback(process.kill)
    assert process.stdout is not None
    return process.stdout.readline().strip()


def start_replicas(stack: ExitStack, root: Path, models_dir: Path, database: str, **extra: str) -> list:
    replicas = []
    root.mkdir(parents=True, exist_ok=True)
    for name in "ab":
        port = free_port()
        values = {
            "JARVIS_DATABASE_URL": database,
            "JARVIS_REPLICA_ID": f"bench-{name}",
            "JARVIS_LOAD_ON_START": "false",
            "JARVIS_LOG_LEVEL": "WARNING",
        }
        env = server_env(root / f"data-{name}", models_dir, **values, **extra)
        command = [str(JARVIS), "serve", "--port", str(port)]
        replicas.append(stack.enter_context(running(command, port=port, env=env, cwd=ROOT, log=root / f"{name}.log")))
    return replicas


async def event_latencies(a_url: str, b_url: str, count: int) -> tuple[list[float], list[float]]:
    """(A's, B's) milliseconds from the start of each POST on A to the event's arrival."""
    arrived: dict[str, dict[str, float]] = {"a": {}, "b": {}}
    ready = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def listen(name: str, url: str, http: httpx.AsyncClient) -> None:
        async with aconnect_sse(http, "GET", f"{url}/api/events", params={"types": "memory"}) as source:
            async for event in source.aiter_sse():
                if event.event == "ready":
                    ready[name].set()
                elif event.event == "memory.created":
                    arrived[name][json.loads(event.data)["content"]] = time.perf_counter()

    async with httpx.AsyncClient(timeout=60) as http:
        listeners = [asyncio.create_task(listen(n, u, http)) for n, u in (("a", a_url), ("b", b_url))]
        await asyncio.gather(*(e.wait() for e in ready.values()))
        sent: dict[str, float] = {}
        for index in range(count):
            content = f"bench event {index} {os.getpid()}"
            sent[content] = time.perf_counter()
            created = await http.post(f"{a_url}/api/memory", json={"content": content})
            created.raise_for_status()
        deadline = time.monotonic() + 30
        while any(len(arrived[n]) < count for n in "ab") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for task in listeners:
            task.cancel()
    lost = {n: count - len(arrived[n]) for n in "ab"}
    if any(lost.values()):
        print(f"  events not received within 30 s: {lost}")
    return tuple(  # type: ignore[return-value]
        [(arrived[n][c] - sent[c]) * 1000 for c in sent if c in arrived[n]] for n in "ab"
    )


async def chat_throughput(url: str, clients: int, seconds: float) -> tuple[float, int]:
    """(answers per second, failures) of `clients` clients chatting for `seconds`."""
    done, failed = 0, 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def client(index: int) -> None:
            nonlocal done, failed
            session_id = None
            turn = 0
            while time.perf_counter() < stop_at:
                body = {"message": f"client {index} turn {turn}", "model": "ollama/echo"}
                if session_id:
                    body["sessionId"] = session_id
                reply = await http.post("/api/chat/messages", json=body)
                if reply.status_code == 200:
                    done += 1
                    session_id = reply.json()["session_id"]
                else:
                    failed += 1
                turn += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    return done / elapsed, failed


def summary(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label:<34} no events"
    return (
        f"  {label:<34} p50 {statistics.median(values):7.1f} ms   p99 {percentile(values, 0.99):7.1f} ms"
        f"   ({len(values)} events)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200, help="memories created per transport (default 200)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent chat clients (default 16)")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per throughput run (default 15)")
    parser.add_argument("--models-dir", type=Path, default=None, help="a model store with the bundled models")
    args = parser.parse_args()
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed (scripts/install.sh --dev)")
    print(f"load before: {os.getloadavg()[0]:.2f} (1-minute average), {os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory(prefix="jarvis-bench-replicas-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        cluster = PostgresCluster.start(bindir)
        stack.callback(cluster.stop)
        redis = RedisServer(root / "redis").start()
        stack.callback(redis.stop)
        ollama = start_stand_in(stack)
        models_dir = args.models_dir or root / "models"
        ensure_bundled(ModelStore(models_dir))  # what a first start would install (none is loaded)

        print(f"events: {args.events} memories created on A, subscribers on A and B")
        events: dict[str, tuple[list[float], list[float]]] = {}
        for transport in ("notify", "redis"):
            with ExitStack() as replicas_stack:
                extra = {"JARVIS_REDIS_URL": redis.url} if transport == "redis" else {}
                database = cluster.create_database(f"bench_{transport}")
                a, b = start_replicas(replicas_stack, root / transport, models_dir, database, **extra)
                events[transport] = asyncio.run(event_latencies(a.url, b.url, args.events))

        print(f"throughput: {args.clients} clients, {args.seconds:.0f} s each, ollama/echo through nginx")
        database = cluster.create_database("bench_chat")
        rates: dict[int, tuple[float, int]] = {}
        with ExitStack() as replicas_stack:
            a, b = start_replicas(replicas_stack, root / "chat", models_dir, database, OLLAMA_HOST=ollama)
            for count, ports in ((1, [a.port, a.port]), (2, [a.port, b.port])):
                nginx = Nginx.start(root / f"nginx-{count}", ports)
                try:
                    asyncio.run(chat_throughput(nginx.url, args.clients, 2.0))  # warm-up
                    rates[count] = asyncio.run(chat_throughput(nginx.url, args.clients, args.seconds))
                finally:
                    nginx.stop()
                print(f"  {count} replica(s): {rates[count][0]:.1f} answers/s ({rates[count][1]} failed)")

    print(f"load after: {os.getloadavg()[0]:.2f} (1-minute average)")
    print("\nresults")
    for transport, label in (("notify", "PostgreSQL NOTIFY"), ("redis", "Redis pub/sub")):
        local, remote = events[transport]
        print(summary(f"{label}: on A (local)", local))
        print(summary(f"{label}: on B (crossed)", remote))
    one, two = rates[1][0], rates[2][0]
    ratio = two / one if one else float("nan")
    verdict = "PASS" if ratio >= 1.8 else "FAIL"
    print(
        f"  chat through nginx                  1 replica {one:.1f}/s, 2 replicas {two:.1f}/s: {ratio:.2f}x  goal >= 1.8x: {verdict}"
    )


if __name__ == "__main__":
    main()
