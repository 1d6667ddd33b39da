"""Continuous batching over the slots of one loaded model, on one thread of its own.

Written by hand over llama-cpp-python's low-level API (a `llama_batch` with sequence ids,
`llama_decode`, per-sequence KV-cache removal, a sampler chain per slot) because its
high-level `Llama.create_completion` runs one sequence at a time and cannot batch.

Each step: waiting jobs take free slots (a job goes to the slot whose cached tokens continue
into its prompt, so a session's next turn finds its own cache and evaluates only what is
new; else to the slot used longest ago, which takes a copy of the longest start of the prompt
that any slot holds, such as a shared system prompt); then one decode holds the next token of every
generating slot plus chunks of pending prompts, up to BATCH_TOKENS; then each slot whose
prompt is done samples its next token. Jobs beyond the slots wait in a FIFO and are told
their position whenever it changes. A cancelled job leaves its slot at the next step.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jarvis.engines.llama_cpp.context import BATCH_TOKENS, Runtime
from jarvis.engines.llama_cpp.generation import Answer, Outcome, Request
from jarvis.errors import JarvisError

log = logging.getLogger(__name__)


MIN_COPIED_TOKENS = 16  # a copied cache start must save at least this much reading (the copy costs ~10 ms)


class EngineFailure(JarvisError):
    status_code = 500
    code = "engine_error"


class Closed(Exception):
    """The batcher no longer takes jobs (its model is being unloaded)."""


@dataclass(frozen=True)
class Queued:
    position: int  # 1: next to get a slot


@dataclass
class Job:
    tokens: list[int]  # the whole prompt
    request: Request
    emit: Callable[[object], None]  # text, Queued, then one Outcome or exception; thread-safe
    cancel: threading.Event = field(default_factory=threading.Event)
    answer: Answer | None = None
    pending: list[int] = field(default_factory=list)  # prompt tokens not yet evaluated
    next_token: int | None = None  # sampled, to be evaluated in the next step
    position: int = 0  # last reported queue position


class Slot:
    def __init__(self, seq_id: int) -> None:
        self.seq_id = seq_id
        self.tokens: list[int] = []  # what this slot's KV cache holds
        self.prompt_size = 0  # how many of them were its last job's prompt
        self.job: Job | None = None
        self.used_at = 0  # admission counter of its last job: 0 never used


class Batcher:
    def __init__(self, runtime: Runtime, *, name: str = "model") -> None:
        self.runtime = runtime
        self.slots = [Slot(seq) for seq in range(runtime.slots)]
        self.waiting: deque[Job] = deque()
        self.peak_busy = 0  # most slots generating at once so far
        self._admissions = itertools.count(1)
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"llama-{name}", daemon=True)
        self._thread.start()

    # --- called from the event loop -------------------------------------------------

    def submit(self, job: Job) -> None:
        """Queue `job`; raises Closed when the model is being unloaded."""
        with self._cond:
            if self._closing:
                raise Closed
            self.waiting.append(job)
            self._cond.notify()

    def wake(self) -> None:
        """Look at cancel flags now (a job waiting in the queue was cancelled)."""
        with self._cond:
            self._cond.notify()

    def close(self) -> None:
        """Take no more jobs, let the running and waiting ones finish, stop. Blocking."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    def stats(self) -> dict:
        busy = sum(1 for slot in self.slots if slot.job is not None)
        cached = sum(len(slot.tokens) for slot in self.slots)
        return {
            "total": len(self.slots),
            "busy": busy,
            "queued": len(self.waiting),
            "tokens_per_slot": self.runtime.n_ctx,
            "cached_tokens": cached,
            "cache_use": round(cached / (len(self.slots) * self.runtime.n_ctx), 4),
        }

    # --- the batch thread -------------------------------------------------------------

    def _run(self) -> None:
        import llama_cpp

        batch = llama_cpp.llama_batch_init(BATCH_TOKENS, 0, 1)
        try:
            while True:
                with self._cond:
                    self._admit()
                    if not any(slot.job for slot in self.slots):
                        if self._closing and not self.waiting:
                            return
                        self._cond.wait()
                        continue
                try:
                    self._step(batch)
                except Exception as exc:  # a bug or a llama.cpp failure: end every answer, keep serving
                    log.exception("batch step failed")
                    self._fail_all(exc)
        finally:
            llama_cpp.llama_batch_free(batch)

    def _admit(self) -> None:
        """Give free slots to waiting jobs in arrival order; tell the rest their place."""
        for job in [job for job in self.waiting if job.cancel.is_set()]:
            self.waiting.remove(job)
            job.emit(Outcome("cancelled", 0))
        free = [slot for slot in self.slots if slot.job is None]
        while self.waiting and free:
            job = self.waiting.popleft()
            slot = self._choose(free, job.tokens)
            free.remove(slot)
            self._assign(slot, job)
        busy = sum(1 for slot in self.slots if slot.job is not None)
        self.peak_busy = max(self.peak_busy, busy)
        for position, job in enumerate(self.waiting, 1):
            if job.position != position:
                job.position = position
                job.emit(Queued(position))

    def _choose(self, free: list[Slot], tokens: list[int]) -> Slot:
        """The free slot whose last prompt this one continues (a conversation's next turn, or
        the same prompt again), else the one used longest ago (never-used slots first): a
        prefix shared with any conversation (the system prompt) does not take its slot."""
        if self.runtime.reuse_prefix:
            own = [
                (n, slot)
                for slot in free
                if slot.prompt_size
                and (n := _common_prefix(slot.tokens, tokens)) >= min(slot.prompt_size, len(tokens) - 1)
            ]
            if own:
                return max(own, key=lambda pair: pair[0])[1]
        return min(free, key=lambda slot: slot.used_at)

    def _assign(self, slot: Slot, job: Job) -> None:
        import llama_cpp

        runtime = self.runtime
        memory = llama_cpp.llama_get_memory(runtime.ctx.ctx)
        keep = 0
        if runtime.reuse_prefix:  # at least the last prompt token is evaluated: sampling needs its logits
            keep = min(_common_prefix(slot.tokens, job.tokens), len(job.tokens) - 1)
            donor, shared = self._donor(slot, job.tokens)
            if donor is not None and shared >= keep + MIN_COPIED_TOKENS:
                # Another slot holds a longer start of this prompt (a system prompt, the same
                # question in another session): take a copy of its cache instead of reading
                # it again. Between the cache's streams llama.cpp copies whole streams; what
                # lies past the shared start is cut off at once.
                llama_cpp.llama_memory_seq_rm(memory, slot.seq_id, -1, -1)
                llama_cpp.llama_memory_seq_cp(memory, donor.seq_id, slot.seq_id, -1, -1)
                slot.tokens = donor.tokens[: len(donor.tokens)]
                keep = shared
        if keep < len(slot.tokens):
            if not llama_cpp.llama_memory_seq_rm(memory, slot.seq_id, keep, -1):
                llama_cpp.llama_memory_seq_rm(memory, slot.seq_id, -1, -1)  # cannot cut back: start afresh
                keep = 0
            del slot.tokens[keep:]
        job.pending = job.tokens[keep:]
        job.answer = Answer(runtime.model, runtime.n_ctx, runtime.vocab, job.request, job.emit)
        job.answer.cached = keep
        slot.job = job
        slot.prompt_size = len(job.tokens)
        slot.used_at = next(self._admissions)

    def _donor(self, slot: Slot, tokens: list[int]) -> tuple[Slot | None, int]:
        """The other slot whose cache starts with the longest part of `tokens`, and how long
        (at most all but the last token). Its cached start never changes while it generates
        (answers only append), so a busy slot can give it too."""
        best, shared = None, 0
        for other in self.slots:
            if other is slot:
                continue
            n = min(_common_prefix(other.tokens, tokens), len(tokens) - 1)
            if n > shared:
                best, shared = other, n
        return best, shared

    def _step(self, batch: Any) -> None:
        import llama_cpp

        runtime = self.runtime
        for slot in self.slots:
            if slot.job is not None and slot.job.cancel.is_set():
                self._finish(slot, "cancelled")
        count = 0
        added: list[tuple[Slot, list[int]]] = []  # tokens each slot gets in this decode
        sampled: list[tuple[Slot, int]] = []  # slots sampling after it, at their logits' index

        def put(slot: Slot, tokens: list[int], logits_last: bool) -> None:
            nonlocal count
            start = len(slot.tokens)
            for offset, token in enumerate(tokens):
                batch.token[count] = token
                batch.pos[count] = start + offset
                batch.n_seq_id[count] = 1
                batch.seq_id[count][0] = slot.seq_id
                batch.logits[count] = False
                count += 1
            if logits_last:
                batch.logits[count - 1] = True
                sampled.append((slot, count - 1))
            added.append((slot, tokens))

        for slot in self.slots:  # one token for each generating slot
            job = slot.job
            if job is None or job.pending or job.next_token is None:
                continue
            if len(slot.tokens) >= runtime.n_ctx:
                self._finish(slot, "length")  # its share of the context is full
                continue
            put(slot, [job.next_token], True)
        prefilling = sorted((slot for slot in self.slots if slot.job and slot.job.pending), key=lambda s: s.used_at)
        for slot in prefilling:  # then prompts, oldest first, as far as the batch goes
            room = BATCH_TOKENS - count
            if room <= 0:
                break
            pending = _job(slot).pending
            chunk = pending[:room]
            put(slot, chunk, len(chunk) == len(pending))
        if not count:
            return
        batch.n_tokens = count
        status = llama_cpp.llama_decode(runtime.ctx.ctx, batch)
        if status != 0:
            raise EngineFailure(f"llama_decode failed ({status}) for a batch of {count} tokens")
        for slot, tokens in added:
            slot.tokens.extend(tokens)
            job = _job(slot)
            if job.pending:
                del job.pending[: len(tokens)]
        for slot, index in sampled:
            answer = _answer(slot)
            token = answer.sampler.sample(runtime.ctx, index)
            if answer.accept(token):
                self._finish(slot)
            else:
                _job(slot).next_token = token
        busy = sum(1 for slot in self.slots if slot.job is not None)
        self.peak_busy = max(self.peak_busy, busy)

    def _finish(self, slot: Slot, reason: str | None = None) -> None:
        answer = _answer(slot)
        job, slot.job = _job(slot), None
        try:
            outcome = answer.finish(reason)
        except Exception as exc:
            job.emit(exc)
        else:
            job.emit(outcome)

    def _fail_all(self, exc: Exception) -> None:
        """End every running answer with `exc`; their slots start afresh."""
        import llama_cpp

        memory = llama_cpp.llama_get_memory(self.runtime.ctx.ctx)
        for slot in self.slots:
            llama_cpp.llama_memory_seq_rm(memory, slot.seq_id, -1, -1)
            slot.tokens, slot.prompt_size = [], 0
            job, slot.job = slot.job, None
            if job is not None:
                if job.answer is not None:
                    job.answer.sampler.close()
                job.emit(exc if isinstance(exc, JarvisError) else EngineFailure(f"generation failed: {exc}"))


def _job(slot: Slot) -> Job:
    assert slot.job is not None  # only called for busy slots
    return slot.job


def _answer(slot: Slot) -> Answer:
    answer = _job(slot).answer
    assert answer is not None  # set when the job took the slot
    return answer


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
