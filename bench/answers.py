"""Answer quality: 20 short factual questions (10 English, 10 German) asked through the chat API
and of the raw llama.cpp engine on the same GGUF, greedy, counting answers that contain the
expected word.

Run by hand (never by pytest):  .venv/bin/python bench/answers.py [--model qwen2.5-coder:0.5b]

  ours  `POST /api/v1/chat/` (a new session per question, temperature 0), the server started by
        the bench as `jarvis serve` with the model as JARVIS_DEFAULT_MODEL;
  raw   llama-cpp-python's `Llama.create_chat_completion` on the model store's file for that
        model (temperature 0, same max_tokens), in a worker process of its own, formatting the
        chat as llama-cpp-python does by itself: the file's chat template, and for a GGUF without
        one (the bundled Gemma 3 270M, a base model) its default `llama-2` format, or the format
        `--raw-format` names. (The server gives such a base model a plain "User: … Assistant:"
        transcript with stop strings instead: engines/llama_cpp/prompt.py.)
An answer counts when it contains one of the accepted spellings as a word ("7" or "seven",
"grün" or "gruen"; case and accents as written, matched case-insensitively), unless it is
tool-call text (`{"name": …, "arguments": …}` in the answer): that is marked `T` and counted
wrong, since the user sees JSON instead of an answer.
Goal: ours >= raw (what the API adds around the engine costs no correct answer), and for the
default model at least 15 of 20.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

DEFAULT_MODEL = "qwen2.5-coder:0.5b"
GOAL_DEFAULT = 15

# (language, question, accepted spellings of the expected word)
QUESTIONS: list[tuple[str, str, tuple[str, ...]]] = [
    ("en", "What is the capital of France?", ("paris",)),
    ("en", "How many days are there in a week?", ("7", "seven")),
    ("en", "What colour is the sky on a clear day?", ("blue",)),
    ("en", "What is 7 times 8?", ("56", "fifty-six", "fifty six")),
    ("en", "What is the largest planet in our solar system?", ("jupiter",)),
    ("en", "How many legs does a spider have?", ("8", "eight")),
    ("en", "What is the chemical formula of water?", ("h2o", "h₂o")),
    ("en", "Who wrote Romeo and Juliet?", ("shakespeare",)),
    ("en", "At how many degrees Celsius does water boil at sea level?", ("100",)),
    ("en", "Which is the largest ocean on Earth?", ("pacific",)),
    ("de", "Was ist die Hauptstadt von Deutschland?", ("berlin",)),
    ("de", "Wie viele Tage hat eine Woche?", ("7", "sieben")),
    ("de", "Welche Farbe hat der Himmel an einem klaren Tag?", ("blau",)),
    ("de", "Was ist 7 mal 8?", ("56", "sechsundfünfzig")),
    ("de", "Wie viele Monate hat ein Jahr?", ("12", "zwölf", "zwoelf")),
    ("de", "Was ist die Hauptstadt von Italien?", ("rom", "roma", "rome")),
    ("de", "Welche Farbe hat Gras?", ("grün", "gruen")),
    ("de", "Wie viele Beine hat eine Katze?", ("4", "vier")),
    ("de", "Wer hat den Faust geschrieben?", ("goethe",)),
    ("de", "Auf welchem Kontinent liegt Ägypten?", ("afrika",)),
]


TOOL_CALL = re.compile(r'\{\s*"name"\s*:\s*"[^"]*"\s*,\s*"arguments"\s*:')


def tool_call_text(answer: str) -> bool:
    """Whether the answer holds a tool call written out as text (`{"name": …, "arguments": …}`)."""
    return TOOL_CALL.search(answer) is not None


def correct(answer: str, accepted: tuple[str, ...]) -> bool:
    """Whether one accepted spelling stands in the answer as a word of its own ("7" not in "17"),
    and the answer is not tool-call text (which may name the word in its arguments)."""
    text = answer.lower()
    return not tool_call_text(answer) and any(re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) for word in accepted)


def raw_worker(conn, model_path: str, threads: int, chat_format: str | None) -> None:
    """Child process: load the GGUF, then answer questions until None."""
    from llama_cpp import Llama

    llm = Llama(model_path=model_path, n_ctx=4096, n_threads=threads, verbose=False, chat_format=chat_format)
    conn.send("ready")
    while (job := conn.recv()) is not None:
        question, max_tokens = job
        llm.reset()  # every question from a fresh context, as a new chat session is
        started = time.perf_counter()
        out = llm.create_chat_completion(
            messages=[{"role": "user", "content": question}], temperature=0, max_tokens=max_tokens
        )
        conn.send((out["choices"][0]["message"]["content"] or "", time.perf_counter() - started))


class RawEngine:
    def __init__(self, model_path: Path, threads: int, chat_format: str | None) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=raw_worker, args=(child, str(model_path), threads, chat_format), daemon=True)
        self.process.start()
        if self.conn.recv() != "ready":
            raise RuntimeError("raw worker failed to load the model")

    def ask(self, question: str, max_tokens: int) -> tuple[str, float]:
        self.conn.send((question, max_tokens))
        return self.conn.recv()

    def close(self) -> None:
        self.conn.send(None)
        self.process.join(timeout=10)


def ask_api(client: httpx.Client, model: str, question: str, max_tokens: int) -> tuple[str, float]:
    """One answer from `POST /api/v1/chat/` in a new session (no session id: no history)."""
    body = {"message": question, "model": model, "temperature": 0, "max_tokens": max_tokens}
    started = time.perf_counter()
    response = client.post("/api/v1/chat/", json=body)
    if response.is_error:
        raise RuntimeError(f"/api/v1/chat/ answered {response.status_code}: {response.text[:500]}")
    return response.json()["response"], time.perf_counter() - started


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, data_dir: Path, models_dir: Path, model: str, threads: int) -> subprocess.Popen:
    """`jarvis serve` with `model` as the default; waits until it is loaded. Raises on failure."""
    unset = ("JARVIS_API_KEY", "JARVIS_API_KEYS_FILE")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        JARVIS_DATA_DIR=str(data_dir),
        JARVIS_MODELS_DIR=str(models_dir),
        JARVIS_DEFAULT_MODEL=model,
        JARVIS_N_THREADS=str(threads),
        JARVIS_LOG_LEVEL="WARNING",
    )
    log_path = data_dir / "server.log"
    cmd = [sys.executable, "-m", "jarvis.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(cmd, env=env, cwd=data_dir, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    active = None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited ({server.returncode}):\n{log_path.read_text()[-2000:]}")
        try:
            active = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).json().get("active_model")
            if active == model:
                return server
            if active:  # it fell back to another model: `model` is not installed in this store
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise RuntimeError(f"the server did not load {model} (active: {active}):\n{log_path.read_text()[-2000:]}")


def mark(answer: str, ok: bool) -> str:
    return "✓" if ok else "T" if tool_call_text(answer) else "✗"


def clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="an installed or bundled model's name")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens of every answer")
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="llama.cpp threads, both sides")
    parser.add_argument("--models-dir", type=Path, help="reuse a model store (default: a temporary one)")
    parser.add_argument("--width", type=int, default=38, help="characters of each answer shown")
    parser.add_argument("--full", action="store_true", help="print every answer in full after the table")
    parser.add_argument("--raw-format", help="llama-cpp-python chat_format for the raw engine (e.g. gemma)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="jarvis-bench-") as tmp:
        data_dir = Path(tmp)
        models_dir = args.models_dir or data_dir / "models"
        port = args.port or free_port()
        server = start_server(port, data_dir, models_dir, args.model, args.threads)
        raw = None
        try:
            from jarvis.models.store import ModelStore

            raw = RawEngine(ModelStore(models_dir).model_path(args.model), args.threads, args.raw_format)
            ours_total = raw_total = 0
            ours_time = raw_time = 0.0
            tools_ours = tools_raw = 0
            by_lang: dict[str, list[int]] = {}  # language -> [ours, raw, asked]
            answers: list[tuple[str, str]] = []
            print(
                f"{args.model}, {len(QUESTIONS)} questions, max_tokens {args.max_tokens}, greedy, "
                f"{args.threads} threads\n"
            )
            print(f"{'#':>2} {'lang':<4} {'question':<46} {'ours':<{args.width + 2}} {'raw':<{args.width + 2}}")
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
                for n, (lang, question, accepted) in enumerate(QUESTIONS, 1):
                    ours, t_ours = ask_api(client, args.model, question, args.max_tokens)
                    theirs, t_raw = raw.ask(question, args.max_tokens)
                    ok_ours, ok_raw = correct(ours, accepted), correct(theirs, accepted)
                    answers.append((ours, theirs))
                    ours_total += ok_ours
                    raw_total += ok_raw
                    counts = by_lang.setdefault(lang, [0, 0, 0])
                    counts[0], counts[1], counts[2] = counts[0] + ok_ours, counts[1] + ok_raw, counts[2] + 1
                    ours_time += t_ours
                    raw_time += t_raw
                    tools_ours += tool_call_text(ours)
                    tools_raw += tool_call_text(theirs)
                    print(
                        f"{n:>2} {lang:<4} {clip(question, 46):<46} {mark(ours, ok_ours)} {clip(ours, args.width):<{args.width}}"
                        f" {mark(theirs, ok_raw)} {clip(theirs, args.width)}"
                    )
            print(
                f"\ncorrect: ours {ours_total}/{len(QUESTIONS)}, raw {raw_total}/{len(QUESTIONS)}"
                f"  (ratio {f'{ours_total / raw_total:.2f}' if raw_total else 'n/a'}); "
                + ", ".join(f"{lang}: ours {o}/{n}, raw {r}/{n}" for lang, (o, r, n) in by_lang.items())
            )
            print(f"tool-call text instead of an answer: ours {tools_ours}, raw {tools_raw}")
            print(f"time: ours {ours_time:.1f} s, raw {raw_time:.1f} s")
            if args.full:
                for n, ((_, question, _), (ours, theirs)) in enumerate(zip(QUESTIONS, answers, strict=False), 1):
                    print(f"\n{n}. {question}\n  ours: {ours!r}\n  raw:  {theirs!r}")
            goal = ours_total >= raw_total and (args.model != DEFAULT_MODEL or ours_total >= GOAL_DEFAULT)
            print(
                f"goal ours >= raw{f' and >= {GOAL_DEFAULT}' if args.model == DEFAULT_MODEL else ''}: "
                f"{'OK' if goal else 'MISSED'}"
            )
        finally:
            if raw:
                raw.close()
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
