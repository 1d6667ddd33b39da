"""Several chats at once: JARVIS's slots and continuous batching against llama.cpp's own batch
API on the same GGUF (the limit) and `python -m llama_cpp.server` (one sequence at a time).

Run by hand (never by pytest):
    .venv/bin/python bench/parallel.py [--model qwen2.5-coder:0.5b] [--tokens 64] [--parallel 4]

For 1, 2, 4 and 8 chats sent at the same moment (new sessions, different prompts that ask for
long answers and suggest no tool), each path reports the aggregate tokens/s (all tokens over
the time from sending to the last token) and the first-token time p50/p95 (from sending):
  batch   llama-cpp-python's low-level API in a process of its own: one context with a KV
          stream per sequence, all prompts in the first llama_decode, then one token of every
          sequence per decode, greedy. What batching on this machine can reach.
  jarvis  the server's `/ws` streaming dialect, JARVIS_PARALLEL=--parallel slots (so 8 chats
          on 4 slots also show the queue).
  llama-server  llama-cpp-python's OpenAI-compatible server, streamed /v1/chat/completions.
Goals: 4 chats at once >= 0.85 of the batch API's tokens/s; the worst first token of 4 chats
sent together <= 4 x a lone chat's + 250 ms.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream import free_port, start_server  # noqa: E402  (bench/ is not a package)

MODEL = "qwen2.5-coder:0.5b"
SUBJECTS = [
    "a dragon who learns to read",
    "a lighthouse keeper on a stormy night",
    "a robot that plants a garden",
    "two friends who sail around the world",
    "a cat who becomes a detective",
    "a city under the sea",
    "a musician who loses her voice",
    "a baker in a small mountain village",
]
CONCURRENCY = (1, 2, 4, 8)
GOAL_RATIO, GOAL_TTFT_FACTOR, GOAL_TTFT_EXTRA_MS = 0.85, 4, 250


_rounds = itertools.count(1)


def prompts(n: int) -> list[str]:
    """n prompts no earlier round asked (a cached prompt would flatter the first token)."""
    round_ = next(_rounds)
    return [f"Story {round_}.{i + 1}: write a long story about {SUBJECTS[i % len(SUBJECTS)]}." for i in range(n)]


def summary(sent: float, firsts: list[float], ends: list[float], tokens: int) -> dict:
    ttft = sorted((f - sent) * 1000 for f in firsts)
    return {
        "tps": tokens / (max(ends) - sent),
        "p50": statistics.median(ttft),
        "p95": ttft[min(len(ttft) - 1, round(0.95 * (len(ttft) - 1)))],
        "max": ttft[-1],
        "tokens": tokens,
    }


def batch_worker(conn, model_path: str, threads: int, tokens: int) -> None:
    """Child process: answers `n` (a count of chats) with n sequences batched by hand."""
    import llama_cpp
    from llama_cpp import _internals
    from llama_cpp._logger import set_verbose

    set_verbose(False)
    model = _internals.LlamaModel(path_model=model_path, params=_internals.LlamaModel.default_params(), verbose=False)
    template = model.metadata().get("tokenizer.chat_template")
    conn.send("ready")
    while (n := conn.recv()) is not None:
        params = _internals.LlamaContext.default_params()
        params.n_ctx, params.n_seq_max, params.kv_unified = n * 4096, n, False
        params.n_batch = params.n_ubatch = 512
        params.n_threads = params.n_threads_batch = threads
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        ctx = _internals.LlamaContext(model=model, params=params, verbose=False)
        batch = llama_cpp.llama_batch_init(512 * n, 0, 1)
        texts = [
            f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n" if template else f"User: {p}\nAssistant:"
            for p in prompts(n)
        ]
        seqs = [model.tokenize(t.encode(), not template, bool(template)) for t in texts]
        samplers = []
        for _ in range(n):
            sampler = _internals.LlamaSampler()
            sampler.add_greedy()
            samplers.append(sampler)
        sent = time.perf_counter()
        positions, last, done, counts = [0] * n, [None] * n, [False] * n, [0] * n
        firsts, ends = [0.0] * n, [0.0] * n
        first_step = True
        while not all(done):
            count, index = 0, {}
            for s in range(n):
                if done[s]:
                    continue
                feed = seqs[s] if first_step else [last[s]]
                for k, token in enumerate(feed):
                    batch.token[count], batch.pos[count], batch.n_seq_id[count] = token, positions[s] + k, 1
                    batch.seq_id[count][0], batch.logits[count] = s, k == len(feed) - 1
                    count += 1
                positions[s] += len(feed)
                index[s] = count - 1
            batch.n_tokens = count
            if llama_cpp.llama_decode(ctx.ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")
            first_step = False
            now = time.perf_counter()
            for s, i in index.items():
                token = samplers[s].sample(ctx, i)
                if counts[s] == 0:
                    firsts[s] = now
                if llama_cpp.llama_vocab_is_eog(model.vocab, token) or counts[s] + 1 >= tokens:
                    done[s], ends[s] = True, now
                counts[s] += 1
                last[s] = token
        llama_cpp.llama_batch_free(batch)
        ctx.close()
        conn.send(summary(sent, firsts, ends, sum(counts)))


def jarvis_chat(url: str, prompt: str, tokens: int, start: threading.Barrier, out: list) -> None:
    with connect(url, max_size=None) as ws:
        json.loads(ws.recv())
        frame = {"type": "chat", "message": prompt, "stream": True, "temperature": 0, "max_tokens": tokens}
        start.wait()
        sent = time.perf_counter()
        ws.send(json.dumps(frame))
        first, count, queued = None, 0, False
        while True:
            msg = json.loads(ws.recv())
            if msg["type"] == "stream_chunk" and msg["content"]:
                first = first or time.perf_counter()
                count += 1
            elif msg["type"] == "queued":
                queued = True
            elif msg["type"] in ("stream_end", "error"):
                break
        out.append((sent, first or time.perf_counter(), time.perf_counter(), count, queued))


def openai_chat(base: str, prompt: str, tokens: int, start: threading.Barrier, out: list) -> None:
    body = {"messages": [{"role": "user", "content": prompt}], "stream": True, "temperature": 0, "max_tokens": tokens}
    with httpx.Client(base_url=base, timeout=600) as client:
        start.wait()
        sent = time.perf_counter()
        first, count = None, 0
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            for line in response.iter_lines():
                if not line.startswith("data:") or line.strip() == "data: [DONE]":
                    continue
                choices = json.loads(line[5:])["choices"]
                if choices and choices[0]["delta"].get("content"):
                    first = first or time.perf_counter()
                    count += 1
        out.append((sent, first or time.perf_counter(), time.perf_counter(), count, False))


def together(target, n: int, *args) -> dict:
    start, out = threading.Barrier(n), []
    threads = [threading.Thread(target=target, args=(*args[:1], p, *args[1:], start, out)) for p in prompts(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = min(o[0] for o in out)
    result = summary(sent, [o[1] for o in out], [o[2] for o in out], sum(o[3] for o in out))
    result["queued"] = sum(o[4] for o in out)
    return result


def start_llama_server(model_path: Path, port: int, threads: int, log: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
        "--n_threads",
        str(threads),
    ]
    server = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.3)
    server.terminate()
    raise RuntimeError(f"llama_cpp.server did not start:\n{log.read_text()[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--tokens", type=int, default=64, help="max_tokens of every answer")
    parser.add_argument("--parallel", type=int, default=4, help="JARVIS_PARALLEL for the server")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--skip-llama-server", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="jarvis-parallel-") as tmp:
        data = Path(tmp)
        models_dir = args.models_dir or data / "models"
        port = free_port()
        os.environ["JARVIS_PARALLEL"] = str(args.parallel)
        server = start_server(port, data, models_dir, args.threads, args.model)
        others: list[subprocess.Popen] = []
        try:
            from jarvis.models.store import ModelStore

            model_path = ModelStore(models_dir).model_path(args.model)
            ctx = mp.get_context("spawn")
            conn, child = ctx.Pipe()
            worker = ctx.Process(
                target=batch_worker, args=(child, str(model_path), args.threads, args.tokens), daemon=True
            )
            worker.start()
            assert conn.recv() == "ready"
            paths = {
                "batch": lambda n: (conn.send(n), conn.recv())[1],
                "jarvis": lambda n: together(jarvis_chat, n, f"ws://127.0.0.1:{port}/ws", args.tokens),
            }
            if not args.skip_llama_server:
                llama_port = free_port()
                others.append(start_llama_server(model_path, llama_port, args.threads, data / "llama-server.log"))
                paths["llama-server"] = lambda n: together(
                    openai_chat, n, f"http://127.0.0.1:{llama_port}", args.tokens
                )
            print(
                f"{args.model}, {args.tokens} tokens an answer, JARVIS_PARALLEL={args.parallel}, {args.threads} threads, "
                f"load {os.getloadavg()[0]:.2f}"
            )
            for run in paths.values():  # warm-up, not counted
                run(1)
            results: dict[str, dict[int, dict]] = {name: {} for name in paths}
            for n in CONCURRENCY:
                for name, run in paths.items():
                    r = results[name][n] = run(n)
                    extra = f"  queued {r['queued']}" if r.get("queued") else ""
                    print(
                        f"  {n} chats  {name:<12} {r['tps']:7.1f} tok/s   first token p50 {r['p50']:7.0f} ms"
                        f"  p95 {r['p95']:7.0f} ms{extra}"
                    )
            print()
            for n in CONCURRENCY:
                ratio = results["jarvis"][n]["tps"] / results["batch"][n]["tps"]
                line = f"{n} chats: jarvis/batch tok/s {ratio:.3f}"
                if "llama-server" in results:
                    line += f", llama-server/batch {results['llama-server'][n]['tps'] / results['batch'][n]['tps']:.3f}"
                print(line)
            four = results["jarvis"][4]["tps"] / results["batch"][4]["tps"]
            lone, worst = results["jarvis"][1]["max"], results["jarvis"][4]["max"]
            limit = GOAL_TTFT_FACTOR * lone + GOAL_TTFT_EXTRA_MS
            print(
                f"goal 4 chats >= {GOAL_RATIO} of the batch API: {four:.3f} {'OK' if four >= GOAL_RATIO else 'MISSED'}"
            )
            print(
                f"goal worst first token of 4 <= 4 x lone + 250 ms: {worst:.0f} ms vs {limit:.0f} ms "
                f"{'OK' if worst <= limit else 'MISSED'}"
            )
            conn.send(None)
            worker.join(timeout=10)
        finally:
            for process in [server, *others]:
                process.terminate()
                process.wait(timeout=30)


if __name__ == "__main__":
    main()
