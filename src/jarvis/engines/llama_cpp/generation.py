"""One answer from a loaded model, token by token, on the model's batch thread.

Sampled with a sampler chain of our own rather than through `create_completion`, because an
answer needs what that call hides: the token ids (a tool call opens with a special token that
its text output drops), a sampler per answer (see sampling.py), and a stop for degenerate
loops. Per token: check for the end (end-of-generation token, token cap, loop), turn the
token into text (UTF-8 split across tokens kept back until whole), cut at stop sequences,
hold back a possible tool call, hand the rest out. The batch loop (batching.py) samples and
feeds the token back.
"""

from __future__ import annotations

import codecs
import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jarvis.engines.llama_cpp.repetition import RepetitionGuard
from jarvis.engines.llama_cpp.sampling import Sampling, build_sampler
from jarvis.engines.llama_cpp.tool_calls import MARKERS, ToolCallFilter


@dataclass
class Request:
    sampling: Sampling
    max_tokens: int
    stop: list[str] = field(default_factory=list)
    offered_tools: set[str] | None = None  # tools the prompt offered: calls of these are parsed
    json_mode: bool = False
    strip_leading: bool = False  # a transcript's answer follows "Assistant:"; drop the space after it


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

    def __init__(self, model: Any) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._vocab = model.vocab
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


class Answer:
    """One answer's state while its slot generates: fed one sampled token at a time by the
    batch loop (batching.py), it decides whether the answer goes on and hands text out."""

    def __init__(
        self, model: Any, n_ctx: int, vocab: Vocabulary, request: Request, emit: Callable[[str], None]
    ) -> None:
        grammar = None
        if request.json_mode:
            from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

            grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        self.sampler = build_sampler(model, request.sampling, n_ctx=n_ctx, grammar=grammar)
        self.request = request
        self.vocab = vocab
        self.emit = emit
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.stops = StopFilter(request.stop)
        self.tools = ToolCallFilter(request.offered_tools) if request.offered_tools else None
        self.guard = RepetitionGuard()
        self.produced = 0
        self.cached = 0  # prompt tokens the slot had cached (set when it is admitted)
        self.reason = "length"
        self.cut = False  # ended by a stop sequence: what follows it is not the answer
        self.started = not request.strip_leading

    def accept(self, token: int) -> bool:
        """Take the token just sampled; True when the answer is over (the token is then not
        part of it, unless it was text that ended in a stop sequence or a loop)."""
        if self.vocab.is_end(token):
            self.reason = "stop"
            return True
        self.produced += 1
        text, stopped = self.stops.feed(self.decoder.decode(self.vocab.piece(token)))
        self._hand_out(text)
        if stopped:
            self.reason, self.cut = "stop", True
            return True
        if self.guard.add(token):
            self.reason = "repetition"
            return True
        return self.produced >= self.request.max_tokens  # reason stays "length"

    def finish(self, reason: str | None = None) -> Outcome:
        """How the answer ended (`reason` overrides: cancelled, or length at a full context);
        hands out what was held back, frees the sampler."""
        if reason is not None:
            self.reason = reason
        if not self.cut:
            self._hand_out(self.stops.feed(self.decoder.decode(b"", final=True))[0] + self.stops.flush())
        calls: list[dict] | None = None
        held = ""
        refused: list[str] = []
        if self.tools is not None:
            held, calls, refused = self.tools.finish()
            if calls and self.reason in ("stop", "length"):
                self.reason = "tool_calls"
        self.sampler.close()
        return Outcome(self.reason, self.produced, self.cached, calls or None, held, refused)

    def _hand_out(self, text: str) -> None:
        if not self.started:
            text = text.lstrip()
            self.started = bool(text)
        if self.tools is not None:
            text = self.tools.feed(text)
        if text:
            self.emit(text)
