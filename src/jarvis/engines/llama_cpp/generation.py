"""One answer from a loaded model: the token loop, run on the model's own thread.

Written over llama-cpp-python's `eval` and a sampler chain of our own instead of
`create_completion`, because an answer needs what that call hides: the token ids (a tool
call opens with a special token that its text output drops), a sampler per answer (see
sampling.py), and a stop for degenerate loops. Per token: sample, check for the end
(end-of-generation token, cancel, token cap, full context, loop), turn the token into text
(UTF-8 split across tokens kept back until whole), cut at stop sequences, hold back a
possible tool call, hand the rest out, feed the token back.
"""

from __future__ import annotations

import codecs
import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from jarvis.engines.llama_cpp.repetition import RepetitionGuard
from jarvis.engines.llama_cpp.sampling import Sampling, build_sampler
from jarvis.engines.llama_cpp.tool_calls import MARKERS, ToolCallFilter


@dataclass
class Request:
    tokens: list[int]  # the prompt
    sampling: Sampling
    max_tokens: int
    stop: list[str] = field(default_factory=list)
    offered_tools: set[str] | None = None  # tools the prompt offered: calls of these are parsed
    json_mode: bool = False
    strip_leading: bool = False  # a transcript's answer follows "Assistant:"; drop the space after it
    reuse_prefix: bool = False  # keep the cached start of the last prompt (see _reusable)


@dataclass
class Outcome:
    reason: str  # stop | length | repetition | tool_calls | cancelled
    completion_tokens: int
    cached_tokens: int = 0  # prompt tokens taken from the cache, not evaluated again
    tool_calls: list[dict] | None = None
    held: str = ""  # text held back as a possible call that was none: the end of the answer
    refused: list[str] = field(default_factory=list)  # calls of tools that were not offered


class Vocabulary:
    """Token ids to the bytes an answer shows (cached: the same ids come back all the time).

    Control tokens show nothing, as in llama-cpp-python's own output, except the markup that
    opens or closes a tool call, which the tool-call parser needs to see."""

    def __init__(self, llm) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._vocab = llm._model.vocab
        self._buffer = ctypes.create_string_buffer(256)
        self._pieces: dict[int, bytes] = {}
        self._eog: dict[int, bool] = {}
        self.tool_markup = {marker.encode() for marker in MARKERS} | {b"</tool_call>"}

    def is_end(self, token: int) -> bool:
        found = self._eog.get(token)
        if found is None:
            found = self._eog[token] = bool(self._lib.llama_vocab_is_eog(self._vocab, token))
        return found

    def piece(self, token: int) -> bytes:
        found = self._pieces.get(token)
        if found is None:
            found = self._pieces[token] = self._make_piece(token)
        return found

    def _make_piece(self, token: int) -> bytes:
        plain = self._to_piece(token, special=False)
        if plain or not self._lib.llama_vocab_is_control(self._vocab, token):
            return plain
        special = self._to_piece(token, special=True)
        return special if special in self.tool_markup else b""

    def _to_piece(self, token: int, *, special: bool) -> bytes:
        size = self._lib.llama_token_to_piece(self._vocab, token, self._buffer, len(self._buffer), 0, special)
        if size < 0:  # longer than the buffer: llama.cpp says how long
            self._buffer = ctypes.create_string_buffer(-size)
            size = self._lib.llama_token_to_piece(self._vocab, token, self._buffer, len(self._buffer), 0, special)
        return self._buffer.raw[:size]


def _reusable(llm, tokens: list[int]) -> int:
    """How many leading tokens of `tokens` the context holds already from the last answer (a
    conversation's next turn repeats the whole earlier prompt and answer). At least the last
    prompt token is evaluated again: sampling needs its logits."""
    import numpy as np

    cached = llm.input_ids[: llm.n_tokens]
    size = min(len(cached), len(tokens) - 1)
    if size <= 0:
        return 0
    same = cached[:size] == np.asarray(tokens[:size], dtype=cached.dtype)
    return size if same.all() else int(np.argmin(same))


class StopFilter:
    """Cuts the text at the first stop sequence; keeps back a tail that may be the start of one."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text to release, whether a stop sequence was reached)."""
        if not self.stops:
            return text, False
        held = self.held + text
        hits = [index for stop in self.stops if (index := held.find(stop)) >= 0]
        if hits:
            self.held = ""
            return held[: min(hits)], True
        keep = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(held)), keep, -1):
                if held.endswith(stop[:size]):
                    keep = size
                    break
        self.held = held[len(held) - keep :]
        return held[: len(held) - keep], False

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held


def generate(llm, vocab: Vocabulary, request: Request, emit: Callable[[str], None], cancel: threading.Event) -> Outcome:
    """Generate one answer with `llm` from a fresh context, handing text to `emit` as it
    comes. Runs on the model's thread; returns why it ended."""
    grammar = None
    if request.json_mode:
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    sampler = build_sampler(llm, request.sampling, grammar=grammar)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    stops = StopFilter(request.stop)
    tools = ToolCallFilter(request.offered_tools) if request.offered_tools else None
    guard = RepetitionGuard()
    n_ctx = llm.n_ctx()
    produced = 0
    reason = "length"
    cut = False  # ended by a stop sequence: what follows it is not the answer

    started = not request.strip_leading

    def hand_out(text: str) -> None:
        nonlocal started
        if not started:
            text = text.lstrip()
            started = bool(text)
        if tools is not None:
            text = tools.feed(text)
        if text:
            emit(text)

    try:
        cached = _reusable(llm, request.tokens) if request.reuse_prefix else 0
        if cached:
            llm.n_tokens = cached  # eval() drops the cache beyond this point first
        else:
            llm.reset()
        llm.eval(request.tokens[cached:])
        while True:
            if cancel.is_set():
                reason = "cancelled"
                break
            if produced >= request.max_tokens or llm.n_tokens >= n_ctx:
                break
            token = sampler.sample(llm._ctx, -1)
            if vocab.is_end(token):
                reason = "stop"
                break
            produced += 1
            text, stopped = stops.feed(decoder.decode(vocab.piece(token)))
            hand_out(text)
            if stopped:
                reason, cut = "stop", True
                break
            if guard.add(token):
                reason = "repetition"
                break
            llm.eval([token])
        if not cut:
            hand_out(stops.feed(decoder.decode(b"", final=True))[0] + stops.flush())
        calls, held, refused = None, "", []
        if tools is not None:
            held, calls, refused = tools.finish()
            if calls and reason in ("stop", "length"):
                reason = "tool_calls"
        return Outcome(reason, produced, cached, calls or None, held, refused)
    finally:
        sampler.close()
