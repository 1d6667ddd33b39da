"""Streaming overhead: the raw llama.cpp engine against JARVIS's WebSocket, SSE,
OpenAI-compatible and Ollama-compatible streaming paths.

Run by hand (never by pytest):  .venv/bin/python bench/stream.py [--tokens 128] [--reps 5] [--model NAME]

The same greedy prompt (temperature 0, fixed max_tokens, a prompt that asks for more text
than that and suggests no tool) to `--model` (default: the default bundled model
qwen2.5-coder:0.5b; gemma3:270m, the bundled base model, also works) goes through
  raw  llama-cpp-python in a worker process of its own, prompted as the server's engine
       prompts that model (see raw_worker),
  ws   the server's `/ws` streaming dialect (`stream_start`, `stream_chunk`…, `stream_end`),
  sse  `POST /api/chat/messages` with `stream: true` (`start`, `token`…, `end`),
  openai  `POST /v1/chat/completions` with `stream: true` (SSE `chat.completion.chunk`s, `[DONE]`),
  ollama  `POST /api/chat` streamed as NDJSON (`message.content` pieces, a final `done: true`).
The server runs as a subprocess on a temporary data dir. Paths never run concurrently:
one warm-up of each, then `--reps` rounds in rotating order, medians reported.
Goal: each path's tokens/s >= 0.97 of raw, extra time to first token <= 10 ms,
and the streamed text identical to the raw engine's.

With `--turns N` (at most 6) it measures a conversation instead: N fixed follow-up questions
in one `/ws` session (its session_id kept), and the same questions to the raw engine with the
growing history (llama-cpp-python keeps its KV cache between calls and evaluates only the new
part, as the server's slot does); first-token time per turn side by side, the decode rate over
all turns. Each measured conversation is a new one (its first question numbered). Goals: the
last turn's first token within 10 ms (+5 % of raw's) of raw; decode >= 0.97 of raw.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

MODEL = "qwen2.5-coder:0.5b"  # the default bundled model (jarvis.config.DEFAULT_MODEL)
# Long enough never to end before --tokens, and no word that makes the server offer a tool
# (JARVIS_CHAT_TOOLS=auto offers them on arithmetic, time or system words): a prompt with
# tools rendered into it would not be the raw engine's prompt.
PROMPT = "Write a long story about a dragon who learns to read."
GOAL_RATIO, GOAL_TTFT_MS = 0.97, 10.0


def timing(sent: float, stamps: list[float], text: str) -> dict:
    """One run's figures from the send time and the arrival time of each content chunk."""
    n = len(stamps)
    return {
        "chunks": n,
        "ttft_ms": (stamps[0] - sent) * 1000 if n else float("nan"),
        "tps": n / (stamps[-1] - sent) if n else 0.0,
        # n chunks span n-1 intervals after the first one arrived
        "decode_tps": (n - 1) / (stamps[-1] - stamps[0]) if n > 1 else 0.0,
        "text": text,
    }


def raw_worker(conn, model_path: str, threads: int) -> None:
    """Child process: load the model, then answer (prompt, tokens) requests as the server's
    embedded engine (src/jarvis/engines/llama_cpp/) would with temperature 0.

    The engine has its own token loop, but for a greedy answer it asks llama.cpp for the same
    thing as these library calls: only the part of the prompt that its cache does not hold yet
    evaluated (the Llama object keeps its KV cache between calls, never reset here, as a server
    slot keeps its own: a conversation's next turn, or the same prompt again, reads only what
    is new, at least the last token), penalties (Ollama's default repeat_penalty 1.1 over the
    last 64 tokens, the Llama object's default last_n_tokens_size), then the most likely token.
    - A model with a chat template: that template, rendered by the same Jinja formatter
      (create_chat_completion picks it up from the GGUF).
    - A model without one (a base model): the engine's plain transcript with its stop
      sequences, the answer's leading whitespace dropped.
    """
    from llama_cpp import Llama

    from jarvis.engines.llama_cpp.prompt import TRANSCRIPT_STOPS, transcript

    # n_threads_batch too: the library's default for prompt reading is every CPU, the server's
    # JARVIS_N_THREADS is both
    llm = Llama(model_path=model_path, n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False)
    is_chat = bool(llm.metadata.get("tokenizer.chat_template"))
    conn.send(("ready", is_chat))
    while (job := conn.recv()) is not None:
        prompt, tokens = job[-2:]
        messages = [{"role": "user", "content": prompt}]
        stamps, parts = [], []
        sent = time.perf_counter()
        if job[0] == "turns":
            conn.send(raw_conversation(llm, job[1], job[2]))
            continue
        # No reset: the server's slot also continues from the cached tokens of the last
        # prompt (the same prompt again re-reads only its last token), so both sides run
        # under the same cache policy.
        if is_chat:
            stream = llm.create_chat_completion(
                messages=messages, temperature=0, repeat_penalty=1.1, max_tokens=tokens, stream=True
            )
            pieces = (part["choices"][0]["delta"].get("content") for part in stream)
        else:
            stream = llm.create_completion(
                transcript(messages),
                temperature=0,
                repeat_penalty=1.1,
                max_tokens=tokens,
                stop=list(TRANSCRIPT_STOPS),
                stream=True,
            )
            pieces = (part["choices"][0]["text"] for part in stream)
        started = is_chat  # a transcript's answer follows "Assistant:": strip what leads it
        for text in pieces:
            if text and not started:
                text = text.lstrip()
                started = bool(text)
            if text:
                stamps.append(time.perf_counter())
                parts.append(text)
        conn.send(timing(sent, stamps, "".join(parts)))


TURNS = [
    "What is the capital of France?",
    "Tell me three facts about that city.",
    "How many people live there?",
    "Which river runs through it?",
    "Name a famous museum there.",
    "What food is it known for?",
]


def conversation_questions(number: int, turns: int) -> list[str]:
    """The follow-up questions of conversation `number`: its first question names the number,
    so no earlier conversation's cache holds its first prompt (turn 1 is then read afresh,
    apart from a start that every prompt shares, such as the template's system prompt)."""
    return [f"Conversation {number}. {TURNS[0]}", *TURNS[1:turns]]


def raw_conversation(llm, questions: list[str], tokens: int) -> list[dict]:
    """Each turn's timing (see timing()) of a conversation, history growing, cache kept."""
    history: list[dict] = []
    turns = []
    for question in questions:
        history.append({"role": "user", "content": question})
        sent, stamps, parts = time.perf_counter(), [], []
        for part in llm.create_chat_completion(
            messages=history, temperature=0, repeat_penalty=1.1, max_tokens=tokens, stream=True
        ):
            text = part["choices"][0]["delta"].get("content")
            if text:
                stamps.append(time.perf_counter())
                parts.append(text)
        turns.append(timing(sent, stamps, "".join(parts)))
        history.append({"role": "assistant", "content": turns[-1]["text"]})
    return turns


def ws_conversation(base: str, questions: list[str], tokens: int) -> list[dict]:
    """Each turn's timing of one `/ws` session (the session_id of the first stream_start
    sent with every later turn, so the server builds each prompt from the stored history)."""
    turns, session = [], None
    with connect(base.replace("http", "ws", 1) + "/ws", max_size=None) as ws:
        json.loads(ws.recv())
        for question in questions:
            frame = {"type": "chat", "message": question, "stream": True, "temperature": 0, "max_tokens": tokens}
            if session:
                frame["session_id"] = session
            sent, stamps, parts = time.perf_counter(), [], []
            ws.send(json.dumps(frame))
            while True:
                msg = json.loads(ws.recv())
                if msg["type"] == "stream_start":
                    session = msg["session_id"]
                elif msg["type"] == "stream_chunk" and msg["content"]:
                    stamps.append(time.perf_counter())
                    parts.append(msg["content"])
                elif msg["type"] == "stream_end":
                    break
                elif msg["type"] == "error":
                    raise RuntimeError(f"ws error frame: {msg}")
            turns.append(timing(sent, stamps, "".join(parts)))
    return turns


def decode_rate(turns: list[dict]) -> float:
    """Tokens/s between the first and the last chunk of each turn, over all turns together
    (a short answer alone says little)."""
    chunks = sum(t["chunks"] - 1 for t in turns if t["chunks"] > 1)
    seconds = sum((t["chunks"] - 1) / t["decode_tps"] for t in turns if t["chunks"] > 1 and t["decode_tps"])
    return chunks / seconds if seconds else 0.0


def report_turns(ours: list[list[dict]], raw: list[list[dict]]) -> None:
    turns = len(ours[0])
    print(
        f"\n{'turn':<5} {'ws TTFT ms':>11} {'raw TTFT ms':>12} {'ws - raw':>9} {'chunks ws/raw':>14}"
        f"   (medians of {len(ours)} conversations)"
    )
    med_ours = [statistics.median(run[t]["ttft_ms"] for run in ours) for t in range(turns)]
    med_raw = [statistics.median(run[t]["ttft_ms"] for run in raw) for t in range(turns)]
    for t in range(turns):
        chunks_ours = statistics.median(run[t]["chunks"] for run in ours)
        chunks_raw = statistics.median(run[t]["chunks"] for run in raw)
        print(
            f"{t + 1:<5} {med_ours[t]:>11.1f} {med_raw[t]:>12.1f} {med_ours[t] - med_raw[t]:>+9.1f}"
            f" {f'{chunks_ours:.0f}/{chunks_raw:.0f}':>14}"
        )
    extra = med_ours[-1] - med_raw[-1]
    allowed = GOAL_TTFT_MS + 0.05 * med_raw[-1]
    ok = extra <= allowed
    print(
        f"turn {turns} first token: ws - raw = {extra:+.1f} ms; goal <= 10 ms + 5 % of raw "
        f"({allowed:.1f} ms): {'OK' if ok else 'MISSED'}"
    )
    dec_ours = statistics.median(decode_rate(run) for run in ours)
    dec_raw = statistics.median(decode_rate(run) for run in raw)
    ratio = dec_ours / dec_raw if dec_raw else float("nan")
    print(
        f"decode over all turns: ws {dec_ours:.1f} tok/s, raw {dec_raw:.1f} tok/s, ratio {ratio:.3f}; "
        f"goal >= {GOAL_RATIO}: {'OK' if ratio >= GOAL_RATIO else 'MISSED'}"
    )
    same = sum(o["text"] == r["text"] for a, b in zip(ours, raw, strict=True) for o, r in zip(a, b, strict=True))
    print(f"turns whose ws text equals the raw engine's: {same}/{turns * len(ours)}")


class RawEngine:
    """The raw engine in its own process, so it never shares an interpreter with the server."""

    def __init__(self, model_path: Path, threads: int) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=raw_worker, args=(child, str(model_path), threads), daemon=True)
        self.process.start()
        try:
            ready, self.is_chat = self.conn.recv()
        except EOFError:
            ready = None
        if ready != "ready":
            raise RuntimeError("raw worker failed to load the model")

    def run(self, prompt: str, tokens: int) -> dict:
        self.conn.send((prompt, tokens))
        return self.conn.recv()

    def conversation(self, questions: list[str], tokens: int) -> list[dict]:
        self.conn.send(("turns", questions, tokens))
        return self.conn.recv()

    def close(self) -> None:
        self.conn.send(None)
        self.process.join(timeout=10)


def run_ws(base: str, prompt: str, tokens: int) -> dict:
    """One streamed answer over `/ws` on a fresh connection (a fresh session, no history)."""
    with connect(base.replace("http", "ws", 1) + "/ws", max_size=None) as ws:
        first = json.loads(ws.recv())
        assert first["type"] == "connection", first
        stamps, parts = [], []
        frame = {"type": "chat", "message": prompt, "stream": True, "temperature": 0, "max_tokens": tokens}
        sent = time.perf_counter()
        ws.send(json.dumps(frame))
        while True:
            msg = json.loads(ws.recv())
            if msg["type"] == "stream_chunk" and msg["content"]:
                stamps.append(time.perf_counter())
                parts.append(msg["content"])
            elif msg["type"] == "stream_end":
                break
            elif msg["type"] == "error":
                raise RuntimeError(f"ws error frame: {msg}")
    return timing(sent, stamps, "".join(parts))


def run_sse(client: httpx.Client, prompt: str, tokens: int) -> dict:
    """One streamed answer as SSE from `POST /api/chat/messages`."""
    body = {"message": prompt, "stream": True, "temperature": 0, "max_tokens": tokens}
    stamps, parts = [], []
    event, data = None, []
    sent = time.perf_counter()
    with client.stream("POST", "/api/chat/messages", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line and data:  # a blank line ends an event
                payload = json.loads("\n".join(data))
                if event == "token" and payload["content"]:
                    stamps.append(time.perf_counter())
                    parts.append(payload["content"])
                elif event == "error":
                    raise RuntimeError(f"sse error event: {payload}")
                elif event == "end":
                    break
                event, data = None, []
    return timing(sent, stamps, "".join(parts))


def run_openai(client: httpx.Client, model: str, prompt: str, tokens: int) -> dict:
    """One streamed answer from the OpenAI-compatible `POST /v1/chat/completions` (nothing stored)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "temperature": 0,
        "max_tokens": tokens,
    }
    stamps, parts = [], []
    sent = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            payload = json.loads(data)
            if "error" in payload:
                raise RuntimeError(f"openai error chunk: {payload}")
            text = payload["choices"][0]["delta"].get("content") if payload["choices"] else None
            if text:
                stamps.append(time.perf_counter())
                parts.append(text)
    return timing(sent, stamps, "".join(parts))


def run_ollama(client: httpx.Client, model: str, prompt: str, tokens: int) -> dict:
    """One streamed answer from the Ollama-compatible `POST /api/chat` (NDJSON, nothing stored)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "options": {"temperature": 0, "num_predict": tokens},
    }
    stamps, parts = [], []
    sent = time.perf_counter()
    with client.stream("POST", "/api/chat", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line:
                continue
            payload = json.loads(line)
            if "error" in payload:
                raise RuntimeError(f"ollama error line: {payload}")
            if payload["done"]:
                break
            if payload["message"]["content"]:
                stamps.append(time.perf_counter())
                parts.append(payload["message"]["content"])
    return timing(sent, stamps, "".join(parts))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, data_dir: Path, models_dir: Path, threads: int, model: str) -> subprocess.Popen:
    """Start `jarvis serve` with `model` as its default and wait until that model is loaded;
    raises on timeout. Tool choice stays at its default (JARVIS_CHAT_TOOLS=auto)."""
    unset = ("JARVIS_API_KEY", "JARVIS_API_KEYS_FILE", "JARVIS_CHAT_TOOLS")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        JARVIS_DEFAULT_MODEL=model,
        JARVIS_DATA_DIR=str(data_dir),
        JARVIS_MODELS_DIR=str(models_dir),
        JARVIS_N_THREADS=str(threads),
        JARVIS_LOG_LEVEL="WARNING",
    )
    log_path = data_dir / "server.log"
    cmd = [sys.executable, "-m", "jarvis.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = log_path.open("wb")
    server = subprocess.Popen(cmd, env=env, cwd=data_dir, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300  # the first start into an empty store installs the bundled models
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited ({server.returncode}):\n{log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).json().get("active_model") == model:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise RuntimeError(f"server not ready after 300 s (is {model} installed?):\n{log_path.read_text()[-2000:]}")


def report(results: dict[str, list[dict]], reference: str, tokens: int) -> None:
    """Print the median table, the ratios against raw and the exact-text check."""
    med = {
        p: {k: statistics.median(r[k] for r in runs) for k in ("tps", "decode_tps", "ttft_ms", "chunks")}
        for p, runs in results.items()
    }
    print(f"\n{'path':<6} {'tok/s':>8} {'decode tok/s':>13} {'TTFT ms':>9} {'chunks':>7}   (medians)")
    for path, m in med.items():
        print(f"{path:<6} {m['tps']:>8.2f} {m['decode_tps']:>13.2f} {m['ttft_ms']:>9.1f} {m['chunks']:>7.0f}")
    raw = med["raw"]
    print()
    for path in (p for p in results if p != "raw"):
        ratio = med[path]["tps"] / raw["tps"]
        decode = med[path]["decode_tps"] / raw["decode_tps"]
        extra = med[path]["ttft_ms"] - raw["ttft_ms"]
        ok = "OK" if ratio >= GOAL_RATIO and extra <= GOAL_TTFT_MS else "MISSED"
        print(
            f"{path}/raw tok/s {ratio:.3f} (decode {decode:.3f}), extra TTFT {extra:+.1f} ms   "
            f"goal >= {GOAL_RATIO} and <= {GOAL_TTFT_MS:.0f} ms: {ok}"
        )
    for path in results:
        same = sum(r["text"] == reference for r in results[path])
        print(f"text of {path} identical to the raw engine's (cache kept): {same}/{len(results[path])} runs")
    short = [p for p, m in med.items() if m["chunks"] < tokens * 0.9]
    if short:
        print(f"note: {', '.join(short)} produced fewer chunks than --tokens {tokens}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=MODEL, help=f"an installed or bundled model (default {MODEL})")
    parser.add_argument("--tokens", type=int, default=128, help="max_tokens of every answer")
    parser.add_argument("--reps", type=int, default=5, help="measured rounds after the warm-up")
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="llama.cpp threads, both sides")
    parser.add_argument("--models-dir", type=Path, help="reuse a model store (default: a temporary one)")
    parser.add_argument("--turns", type=int, default=0, help="measure an N-turn conversation instead (max 6)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="jarvis-bench-") as tmp:
        data_dir = Path(tmp)
        models_dir = args.models_dir or data_dir / "models"
        port = args.port or free_port()
        server = start_server(port, data_dir, models_dir, args.threads, args.model)
        raw = client = None
        try:
            from jarvis.models.store import ModelStore

            model_path = ModelStore(models_dir).model_path(args.model)
            if model_path is None:
                raise SystemExit(f"{args.model} is not in the model store {models_dir}")
            raw = RawEngine(model_path, args.threads)
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)
            if args.turns:
                if not raw.is_chat:
                    raise SystemExit(f"--turns needs a model with a chat template; {args.model} has none")
                turns = min(args.turns, len(TURNS))
                base = f"http://127.0.0.1:{port}"
                print(
                    f"{args.model}, {turns}-turn conversation, {args.tokens} tokens a turn, {args.reps} reps, "
                    f"{args.threads} threads, load {os.getloadavg()[0]:.2f}"
                )
                ws_conversation(base, conversation_questions(0, 1), args.tokens)  # warm-up, not counted
                raw.conversation(conversation_questions(0, 1), args.tokens)
                ours, raws = [], []
                for rep in range(1, args.reps + 1):
                    questions = conversation_questions(rep, turns)
                    pair = [
                        ("ws", lambda q=questions: ws_conversation(base, q, args.tokens)),
                        ("raw", lambda q=questions: raw.conversation(q, args.tokens)),
                    ]
                    for name, run in pair if rep % 2 else pair[::-1]:  # alternate which goes first
                        result = run()
                        (ours if name == "ws" else raws).append(result)
                        print(
                            f"  conversation {rep} {name:<3} first token ms {[round(t['ttft_ms']) for t in result]}"
                            f"  decode {decode_rate(result):.1f} tok/s  load {os.getloadavg()[0]:.2f}"
                        )
                report_turns(ours, raws)
                return
            paths = {
                "raw": lambda: raw.run(args.prompt, args.tokens),
                "ws": lambda: run_ws(f"http://127.0.0.1:{port}", args.prompt, args.tokens),
                "sse": lambda: run_sse(client, args.prompt, args.tokens),
                "openai": lambda: run_openai(client, args.model, args.prompt, args.tokens),
                "ollama": lambda: run_ollama(client, args.model, args.prompt, args.tokens),
            }
            prompting = "its chat template" if raw.is_chat else "no chat template: transcript + stops"
            print(
                f"{args.model} ({prompting}), {args.tokens} tokens, {args.reps} reps, "
                f"{args.threads} threads, port {port}"
            )
            warm = {name: run() for name, run in paths.items()}  # warm-up, not counted
            reference = warm["raw"]["text"]
            results: dict[str, list[dict]] = {name: [] for name in paths}
            names = list(paths)
            for rep in range(args.reps):
                shift = rep % len(names)
                order = names[shift:] + names[:shift]  # rotate so no path always runs first
                for name in order:
                    r = paths[name]()
                    results[name].append(r)
                    print(
                        f"  rep {rep + 1} {name:<6} {r['tps']:6.2f} tok/s  decode {r['decode_tps']:6.2f}"
                        f"  TTFT {r['ttft_ms']:7.1f} ms"
                    )
            # The warm-up read each prompt afresh; every measured run re-reads only its last
            # token (both sides keep their cache), which can change greedy text: compare with
            # the raw engine's measured runs, under the same cache policy.
            reference = results["raw"][0]["text"]
            report(results, reference, args.tokens)
            print(f"raw text ({len(reference)} chars): {reference[:200]!r}{'…' if len(reference) > 200 else ''}")
        finally:
            if client:
                client.close()
            if raw:
                raw.close()
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
