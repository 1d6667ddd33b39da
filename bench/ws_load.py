"""Load on the WebSocket while the model works: N connections ping and ask for history while
M chat requests queue on the real bundled model. Run by hand:

    .venv/bin/python bench/ws_load.py [--sockets 500] [--chats 50] [--tokens 16]

Starts its own server (temporary data dir) on loopback, prints ping latency p50/p99 measured
while answers are being generated, how many chat requests were answered, and anything lost
(a ping without its pong, a history without its answer, a chat without its end). Goal: p99
≤ 50 ms on two cores, nothing lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]


def start_server(port: int, data: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "JARVIS_DATA_DIR": str(data),
        "JARVIS_PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "JARVIS_MAX_QUEUE": "1000",
        "JARVIS_MAX_CONNECTIONS_PER_CLIENT": "5000",
    }
    jarvis = Path(sys.executable).with_name("jarvis")
    process = subprocess.Popen(
        [str(jarvis), "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.kill()
    raise SystemExit("the server did not start")


async def pinger(
    url: str, stop: asyncio.Event, latencies: dict[str, list[float]], lost: list[str], phase: list[str], interval: float
) -> None:
    """One socket: ping and history, alternately, until stopped; ping latency recorded per
    phase (`idle` before the chats, `generating` while they run)."""
    async with connect(url, max_size=None, open_timeout=60) as ws:
        await ws.recv()  # greeting
        while not stop.is_set():
            for frame, answer in (({"type": "ping"}, "pong"), ({"type": "history"}, "history")):
                sent = time.perf_counter()
                await ws.send(json.dumps(frame))
                try:
                    reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
                except TimeoutError:
                    lost.append(frame["type"])
                    continue
                if reply.get("type") != answer:
                    lost.append(f"{frame['type']} -> {reply.get('type')}")
                elif frame["type"] == "ping" and phase[0] in latencies:
                    latencies[phase[0]].append((time.perf_counter() - sent) * 1000)
            await asyncio.sleep(interval)


async def chatter(url: str, index: int, tokens: int, answered: list[int], lost: list[str]) -> None:
    async with connect(url, max_size=None, open_timeout=60) as ws:
        await ws.recv()
        await ws.send(
            json.dumps(
                {
                    "type": "chat",
                    "message": f"Tell me about number {index}",
                    "stream": True,
                    "temperature": 0,
                    "max_tokens": tokens,
                }
            )
        )
        while True:
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 600))
            except TimeoutError:
                lost.append(f"chat {index}")
                return
            if frame["type"] == "stream_end":
                answered.append(index)
                return
            if frame["type"] == "error":
                lost.append(f"chat {index}: {frame.get('error')}")
                return


async def run(args) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    port = args.port
    url = f"ws://127.0.0.1:{port}/ws"
    latencies: dict[str, list[float]] = {"idle": [], "generating": []}
    lost: list[str] = []
    answered: list[int] = []
    stop = asyncio.Event()
    phase = ["opening"]
    pingers = []
    for i in range(args.sockets):
        pingers.append(asyncio.create_task(pinger(url, stop, latencies, lost, phase, args.interval)))
        if i % 50 == 49:
            await asyncio.sleep(0.2)  # open them in waves, as clients arrive
    await asyncio.sleep(2)
    phase[0] = "idle"
    await asyncio.sleep(args.idle)
    phase[0] = "generating"
    started = time.perf_counter()
    chats = [asyncio.create_task(chatter(url, i, args.tokens, answered, lost)) for i in range(args.chats)]
    await asyncio.gather(*chats)
    phase[0] = "done"
    elapsed = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*pingers, return_exceptions=True)
    print(
        f"sockets                 {args.sockets} pinging (ping + history every {args.interval} s) + {args.chats} chats "
        f"({args.tokens} tokens each)"
    )
    print(f"generation took         {elapsed:.1f} s")
    for name, values in latencies.items():
        values.sort()
        p = lambda q: values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")  # noqa: B023, E731
        verdict = (
            f"   (goal p99 <= 50 ms: {'PASS' if values and p(0.99) <= 50 else 'FAIL'})" if name == "generating" else ""
        )
        print(
            f"ping latency {name:<10} p50 {p(0.50):.1f} ms   p99 {p(0.99):.1f} ms   max {values[-1] if values else 0:.1f} ms"
            f"   mean {statistics.fmean(values) if values else 0:.1f} ms   ({len(values)} pings){verdict}"
        )
    print(f"chats answered          {len(answered)} of {args.chats}")
    print(f"lost                    {len(lost)}{': ' + ', '.join(lost[:10]) if lost else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--port", type=int, default=5091)
    parser.add_argument("--external", action="store_true", help="use a server already listening on --port")
    parser.add_argument("--interval", type=float, default=0.2, help="pause between one socket's ping+history rounds")
    parser.add_argument("--idle", type=float, default=10, help="seconds of pinging measured before the chats start")
    args = parser.parse_args()
    if args.external:
        return asyncio.run(run(args))
    with tempfile.TemporaryDirectory(prefix="jarvis-ws-load-") as data:
        server = start_server(args.port, Path(data))
        try:
            asyncio.run(run(args))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
