"""Several chats at once: JARVIS's slots and continuous batching against llama.cpp's own batch
API on the same GGUF (the limit) and `python -m llama_cpp.server` (one sequence at a time).

Run by hand (never by pytest):
    .venv/bin/python bench/parallel.py [--model qwen2.5-coder:0.5b] [--tokens 64] [--reps 2]
        [--parallel 4] [--threads N] [--models-dir DIR] [--skip-llama-server] [--batch-penalties]

For 1, 2, 4 and 8 chats sent at the same moment (new sessions, different prompts that ask for
long answers and suggest no tool, none asked before), each path reports the aggregate
tokens/s (all answers' tokens over the time from sending to the last token) and the
first-token time p50/p95 (from sending); medians over `--reps` rounds (paths in rotating
order, never two at the same time; one warm-up chat on each first):
  batch   llama-cpp-python's low-level API in a process of its own: one context of n sequences
          x 4096 tokens, a KV stream per sequence (kv_unified off), flash attention off,
          n_batch 512 (more if n prompts need it), all prompts (rendered and tokenized as the
          server does) in the first llama_decode, then one token of every sequence per decode,
          a greedy sampler per sequence (with `--batch-penalties` also the server's
          repeat_penalty 1.1 over 64 tokens). What batching on this machine can reach.
  jarvis  the server's `/ws` streaming dialect (a connection each), JARVIS_PARALLEL=--parallel
          slots (default 4, so 8 chats also wait in the queue: `queued` frames counted);
          tokens from stream_end's usage.
  llama-server  llama-cpp-python's OpenAI-compatible server (`--interrupt_requests False`:
          by default it ends a streaming answer as soon as another request waits), streamed
          /v1/chat/completions; it answers one request at a time.
Goals: 4 chats at once >= 0.85 of the batch API's tokens/s; the worst first token of 4 chats
sent together <= 4 x a lone chat's + 250 ms. The load average is printed with every line:
on a shared 2-core machine other work moves every figure.
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
    """n prompts no earlier round asked (a cached prompt would flatter the first token). The
    number goes last and never as digit-operator-digit: "Story 18.1: write a long story
    about …" made the default model refuse ("I'm sorry, but I can't assist with that
    request.", 13 tokens), and "(Request 18-1.)" reads as arithmetic to JARVIS_CHAT_TOOLS=auto,
    which then offers the calculator (a prompt of 202 tokens instead of 48)."""
    round_ = next(_rounds)
    letters = "abcdefghijklmnop"
    return [
        f"Write a long story about {SUBJECTS[i % len(SUBJECTS)]}. (Request {round_}{letters[i % 16]}.)"
        for i in range(n)
    ]


def summary(sent: float, firsts: list[float], ends: list[float], tokens: int) -> dict:
    ttft = sorted((f - sent) * 1000 for f in firsts)
    return {
        "tps": tokens / (max(ends) - sent),
        "p50": statistics.median(ttft),
        "p95": ttft[min(len(ttft) - 1, round(0.95 * (len(ttft) - 1)))],
        "max": ttft[-1],
        "tokens": tokens,
    }


def batch_worker(conn, model_path: str, threads: int, tokens: int, penalties: bool) -> None:
    """Child process: answers (n, prompts) with the n prompts batched by hand."""
    import llama_cpp
    from llama_cpp import _internals
    from llama_cpp._logger import set_verbose

    from jarvis.engines.llama_cpp.prompt import ChatPrompt

    set_verbose(False)
    model = _internals.LlamaModel(path_model=model_path, params=_internals.LlamaModel.default_params(), verbose=False)
    # the server's prompt: the GGUF's template (or the plain transcript), tokenized as it does
    chat = ChatPrompt(
        model.metadata().get("tokenizer.chat_template"),
        eos_token=model.token_get_text(model.token_eos()),
        bos_token=model.token_get_text(model.token_bos()),
    )
    conn.send("ready")
    while (job := conn.recv()) is not None:
        n, texts = job
        seqs = [
            model.tokenize(chat.render([{"role": "user", "content": t}]).text.encode(), not chat.is_chat, chat.is_chat)
            for t in texts
        ]
        total = sum(len(seq) for seq in seqs)
        params = _internals.LlamaContext.default_params()
        params.n_ctx, params.n_seq_max, params.kv_unified = n * 4096, n, False
        params.n_batch = max(512, total)  # all prompts go into the first decode
        params.n_ubatch = 512
        params.n_threads = params.n_threads_batch = threads
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        ctx = _internals.LlamaContext(model=model, params=params, verbose=False)
        batch = llama_cpp.llama_batch_init(max(total, n), 0, 1)
        samplers = []
        for _ in range(n):
            sampler = _internals.LlamaSampler()
            if penalties:
                sampler.add_penalties(
                    n_vocab=model.n_vocab(), penalty_last_n=64, penalty_repeat=1.1, penalty_freq=0, penalty_present=0
                )
            sampler.add_greedy()
            samplers.append(sampler)
        sent = time.perf_counter()
        positions, last, done, counts = [0] * n, [0] * n, [False] * n, [0] * n
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
                if llama_cpp.llama_vocab_is_eog(model.vocab, token):  # not a token of the answer
                    done[s], ends[s] = True, now
                    firsts[s] = firsts[s] or now
                    continue
                counts[s] += 1
                firsts[s] = firsts[s] or now
                if counts[s] >= tokens:
                    done[s], ends[s] = True, now
                last[s] = token
        for sampler in samplers:
            sampler.close()
        llama_cpp.llama_batch_free(batch)
        ctx.close()
        result = summary(sent, firsts, ends, sum(counts))
        result["prompt_tokens"] = total
        conn.send(result)


def jarvis_chat(url: str, prompt: str, tokens: int, start: threading.Barrier, out: list) -> None:
    with connect(url, max_size=None) as ws:
        json.loads(ws.recv())
        frame = {"type": "chat", "message": prompt, "stream": True, "temperature": 0, "max_tokens": tokens}
        start.wait()
        sent = time.perf_counter()
        ws.send(json.dumps(frame))
        first, chunks, queued, produced = None, 0, 0, None
        while True:
            msg = json.loads(ws.recv())
            if msg["type"] == "stream_chunk" and msg["content"]:
                first = first or time.perf_counter()
                chunks += 1
            elif msg["type"] == "queued":
                queued = max(queued, msg["position"])
            elif msg["type"] == "stream_end":
                produced = (msg.get("usage") or {}).get("completion_tokens")
                break
            elif msg["type"] == "error":
                raise RuntimeError(f"ws error frame: {msg}")
        end = time.perf_counter()
        out.append((sent, first or end, end, produced if produced is not None else chunks, queued))


def openai_chat(base: str, prompt: str, tokens: int, start: threading.Barrier, out: list) -> None:
    body = {"messages": [{"role": "user", "content": prompt}], "stream": True, "temperature": 0, "max_tokens": tokens}
    with httpx.Client(base_url=base, timeout=600) as client:
        start.wait()
        sent = time.perf_counter()
        first, count = None, 0
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data:") or line.strip() == "data: [DONE]":
                    continue
                choices = json.loads(line[5:])["choices"]
                if choices and choices[0]["delta"].get("content"):
                    first = first or time.perf_counter()
                    count += 1  # llama-cpp-python streams one chunk a token
        end = time.perf_counter()
        out.append((sent, first or end, end, count, 0))


def together(target, texts: list[str], url: str, tokens: int) -> dict:
    """Send `texts` at the same moment, a thread (and a connection) each; wait for all."""
    start, out = threading.Barrier(len(texts)), []
    threads = [threading.Thread(target=target, args=(url, text, tokens, start, out)) for text in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(out) != len(texts):
        raise RuntimeError(f"{len(texts) - len(out)} of {len(texts)} chats failed")
    sent = min(o[0] for o in out)
    result = summary(sent, [o[1] for o in out], [o[2] for o in out], sum(o[3] for o in out))
    result["queued"] = sum(1 for o in out if o[4])
    result["max_position"] = max(o[4] for o in out)
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
        "--n_threads_batch",
        str(threads),
        "--interrupt_requests",
        "False",
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


def llama_server_missing() -> str | None:
    """Why `python -m llama_cpp.server` cannot run in this interpreter, or None."""
    try:
        import llama_cpp.server.app  # noqa: F401  (its extras: fastapi, sse-starlette, starlette-context, …)
    except ImportError as exc:
        return f"llama_cpp.server cannot start: {exc} (pip install 'llama-cpp-python[server]')"
    return None


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=MODEL, help=f"an installed or bundled model (default {MODEL})")
    parser.add_argument("--tokens", type=int, default=64, help="max_tokens of every answer")
    parser.add_argument("--reps", type=int, default=2, help="measured rounds (medians reported)")
    parser.add_argument("--parallel", type=int, default=4, help="JARVIS_PARALLEL for the server (default 4)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="llama.cpp threads, every path")
    parser.add_argument("--models-dir", type=Path, help="reuse a model store (default: a temporary one)")
    parser.add_argument("--skip-llama-server", action="store_true")
    parser.add_argument("--batch-penalties", action="store_true", help="batch API: the server's repeat penalty too")
    parser.add_argument(
        "--concurrency", default=",".join(map(str, CONCURRENCY)), help="chats at once, comma-separated (1 first)"
    )
    args = parser.parse_args()
    levels = [int(n) for n in args.concurrency.split(",")]

    with tempfile.TemporaryDirectory(prefix="jarvis-parallel-") as tmp:
        data = Path(tmp)
        models_dir = args.models_dir or data / "models"
        port = free_port()
        os.environ["JARVIS_PARALLEL"] = str(args.parallel)  # start_server passes the environment on
        server = start_server(port, data, models_dir, args.threads, args.model)
        others: list[subprocess.Popen] = []
        worker = None
        try:
            from jarvis.models.store import ModelStore

            model_path = ModelStore(models_dir).model_path(args.model)
            if model_path is None:
                raise SystemExit(f"{args.model} is not in the model store {models_dir}")
            ctx = mp.get_context("spawn")
            conn, child = ctx.Pipe()
            worker = ctx.Process(
                target=batch_worker,
                args=(child, str(model_path), args.threads, args.tokens, args.batch_penalties),
                daemon=True,
            )
            worker.start()
            if conn.recv() != "ready":
                raise RuntimeError("batch worker failed to load the model")
            paths = {
                "batch": lambda texts: (conn.send((len(texts), texts)), conn.recv())[1],
                "jarvis": lambda texts: together(jarvis_chat, texts, f"ws://127.0.0.1:{port}/ws", args.tokens),
            }
            missing = None if args.skip_llama_server else llama_server_missing()
            if missing:
                print(f"note: {missing}; that column is left out")
            elif not args.skip_llama_server:
                llama_port = free_port()
                others.append(start_llama_server(model_path, llama_port, args.threads, data / "llama-server.log"))
                paths["llama-server"] = lambda texts: together(
                    openai_chat, texts, f"http://127.0.0.1:{llama_port}", args.tokens
                )
            health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=10).json()
            print(
                f"{args.model}, {args.tokens} tokens an answer, JARVIS_PARALLEL={args.parallel} "
                f"(server slots: {json.dumps(health.get('slots'))}), {args.threads} threads, {args.reps} reps, {load()}"
            )
            for run in paths.values():  # warm-up, not counted
                run(prompts(1))
            runs: dict[str, dict[int, list[dict]]] = {name: {n: [] for n in levels} for name in paths}
            names = list(paths)
            for rep in range(args.reps):
                for n in levels:
                    shift = (rep + n) % len(names)
                    for name in names[shift:] + names[:shift]:  # rotate: no path always goes first
                        r = paths[name](prompts(n))
                        runs[name][n].append(r)
                        extra = (
                            f"  queued {r['queued']} (position up to {r['max_position']})" if r.get("queued") else ""
                        )
                        print(
                            f"  rep {rep + 1}  {n} chats  {name:<12} {r['tps']:7.1f} tok/s  {r['tokens']:4d} tokens"
                            f"   first token p50 {r['p50']:7.0f} ms  p95 {r['p95']:7.0f} ms  {load()}{extra}"
                        )
            med = {
                name: {
                    n: {k: statistics.median(r[k] for r in rs) for k in ("tps", "p50", "p95", "max")}
                    for n, rs in by.items()
                }
                for name, by in runs.items()
            }
            print(f"\nmedians of {args.reps} rounds:")
            print(f"{'chats':>5} {'path':<12} {'tok/s':>8} {'TTFT p50 ms':>12} {'TTFT p95 ms':>12} {'/ batch':>8}")
            for n in levels:
                for name in names:
                    m = med[name][n]
                    ratio = m["tps"] / med["batch"][n]["tps"]
                    print(f"{n:>5} {name:<12} {m['tps']:>8.1f} {m['p50']:>12.0f} {m['p95']:>12.0f} {ratio:>8.3f}")
            print()
            if 4 in levels:
                four = med["jarvis"][4]["tps"] / med["batch"][4]["tps"]
                print(
                    f"goal 4 chats >= {GOAL_RATIO} of the batch API's tok/s: {four:.3f} "
                    f"{'OK' if four >= GOAL_RATIO else 'MISSED'}"
                )
            if 1 in levels and 4 in levels:
                lone, worst = med["jarvis"][1]["max"], med["jarvis"][4]["max"]
                limit = GOAL_TTFT_FACTOR * lone + GOAL_TTFT_EXTRA_MS
                print(
                    f"goal worst first token of 4 <= 4 x lone ({lone:.0f} ms) + 250 ms = {limit:.0f} ms: {worst:.0f} ms "
                    f"{'OK' if worst <= limit else 'MISSED'}"
                )
            print(f"end: {load()}")
        finally:
            if worker is not None and worker.is_alive():
                conn.send(None)
                worker.join(timeout=10)
            for process in [server, *others]:
                process.terminate()
                process.wait(timeout=30)


if __name__ == "__main__":
    main()
