"""Embedded llama.cpp through llama-cpp-python.

The loaded model serves several answers at once: its context has N slots (JARVIS_PARALLEL),
and one thread of its own runs continuous batching over them (batching.py), never the event
loop. Answers beyond N wait in a FIFO (at most JARVIS_MAX_QUEUE) and are told their place.
Closing a stream sets a flag that the batch thread checks every step, so the answer stops
within one token and its slot is free before the close returns. The context and its memory
are in context.py, one answer's token handling in generation.py, prompts in prompt.py,
sampler settings in sampling.py, tool calls in tool_calls.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil

from jarvis.engines.base import Chunk, GenerationOptions, ModelInfo, Usage
from jarvis.engines.llama_cpp.batching import Batcher, Closed, Job, Queued
from jarvis.engines.llama_cpp.context import DEFAULT_SLOTS, Runtime, open_runtime, plan_slots
from jarvis.engines.llama_cpp.generation import Outcome, Request
from jarvis.engines.llama_cpp.prompt import ChatPrompt, Rendered
from jarvis.engines.llama_cpp.sampling import model_defaults, resolve
from jarvis.errors import InvalidInput, JarvisError, ModelLoadError, ModelNotFound, TooManyRequests
from jarvis.models.gguf_info import read_metadata
from jarvis.models.store import ModelStore

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class LoadedModel:
    name: str
    path: Path
    runtime: Runtime
    batcher: Batcher
    sampling: dict  # the model's own sampler settings (GGUF keys, Ollama params)
    stops: list[str]  # the publisher's stop sequences (Ollama params)
    load_seconds: float

    @property
    def n_ctx(self) -> int:
        """Tokens one answer's conversation may take (a slot's share of the context)."""
        return self.runtime.n_ctx

    @property
    def prompt(self) -> ChatPrompt:
        return self.runtime.prompt


class LlamaCppEngine:
    name = "llama_cpp"

    def __init__(
        self,
        store: ModelStore,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        max_queue: int | None = None,
        parallel: int | None = None,
        memory_limit: int | None = None,
    ) -> None:
        self.max_queue = max_queue
        self.parallel = parallel  # slots; None: DEFAULT_SLOTS, fewer where memory is short
        self.memory_limit = memory_limit  # bytes a loaded model may take; None: no check
        self.waiting = 0  # answers started and not finished (generating or queued)
        self.on_event: Callable[[str, dict], None] | None = None  # model.loaded / model.unloaded
        self.store = store
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.loaded: LoadedModel | None = None
        self.state = "idle"  # idle | loading | ready | error
        self.last_error: str | None = None
        self._switch = asyncio.Lock()
        self._prompts = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama-prompts")
        self._embedder: tuple[str, Any, ThreadPoolExecutor] | None = None  # llama_cpp.Llama
        self._embed_lock = asyncio.Lock()

    # --- loading -------------------------------------------------------------------

    async def load(self, name: str) -> LoadedModel:
        """Load `name` from the store, unloading the model loaded before.

        Raises ModelNotFound if it is not installed, ModelLoadError if the file is refused.
        """
        async with self._switch:
            if self.loaded and self.loaded.name == name:
                return self.loaded
            path = self.store.model_path(name)
            if path is None:
                raise ModelNotFound(f"model {name!r} is not installed")
            meta = await asyncio.to_thread(read_metadata, path)  # refuses a bad header before llama.cpp sees it
            parameters = self.store.parameters(name)
            await self._unload_locked()
            self.state = "loading"
            started = time.perf_counter()
            try:
                slots, n_ctx = plan_slots(
                    meta,
                    path,
                    n_ctx=self.n_ctx,
                    slots=self.parallel,
                    memory_limit=self.memory_limit,
                    available=psutil.virtual_memory().available,
                )
                runtime = await asyncio.to_thread(
                    open_runtime, path, slots=slots, n_ctx=n_ctx, n_threads=self.n_threads
                )
            except Exception as exc:
                self.state, self.last_error = "error", str(exc)
                if isinstance(exc, JarvisError):
                    raise
                raise ModelLoadError(f"llama.cpp could not load {name!r}: {exc}") from exc
            self.loaded = LoadedModel(
                name=name,
                path=path,
                runtime=runtime,
                batcher=Batcher(runtime, name=name),
                sampling=model_defaults(meta.get("sampling") or {}, parameters),
                stops=[s for s in parameters.get("stop") or [] if isinstance(s, str) and s][:16],
                load_seconds=time.perf_counter() - started,
            )
            self.state, self.last_error = "ready", None
            log.info(
                "loaded %s in %.2fs (%d slots of %d tokens, prefix reuse %s)",
                name,
                self.loaded.load_seconds,
                runtime.slots,
                runtime.n_ctx,
                "on" if runtime.reuse_prefix else "off",
            )
            self._emit(
                "model.loaded",
                {
                    "model": name,
                    "load_seconds": round(self.loaded.load_seconds, 3),
                    "context_length": runtime.n_ctx,
                    "slots": runtime.slots,
                },
            )
            return self.loaded

    def _emit(self, kind: str, data: dict) -> None:
        if self.on_event is not None:
            self.on_event(kind, data)

    async def unload(self) -> None:
        async with self._switch:
            await self._unload_locked()

    async def forget(self, name: str) -> None:
        """Unload `name` if it is the loaded model: its files were deleted or replaced (a pull
        of a newer version), so its next use loads what the store now holds."""
        async with self._switch:
            if self.loaded and self.loaded.name == name:
                await self._unload_locked()

    async def _unload_locked(self) -> None:
        loaded, self.loaded = self.loaded, None
        if loaded is None:
            return
        await asyncio.to_thread(loaded.batcher.close)  # the running and waiting answers finish first
        await asyncio.to_thread(loaded.runtime.close)
        self.state = "idle"
        log.info("unloaded %s", loaded.name)
        self._emit("model.unloaded", {"model": loaded.name})

    async def _ensure(self, model: str) -> LoadedModel:
        loaded = self.loaded
        if loaded and loaded.name == model:
            return loaded
        return await self.load(model)

    # --- generation ----------------------------------------------------------------

    async def stream(
        self, model: str, messages: list[dict], options: GenerationOptions, tools: list[dict] | None = None
    ) -> AsyncGenerator[Chunk, None]:
        """The answer to `messages`; with `tools` (OpenAI-style specs) the last chunk may carry
        calls of those tools instead of text. Raises ModelNotFound, ModelLoadError,
        TooManyRequests, InvalidInput (the model's template refuses the messages)."""
        with self._queued():
            while True:
                loaded = await self._ensure(model)
                offered = tools if tools and loaded.prompt.supports_tools else None
                rendered, tokens = await self._prepare(_chat_prompt, loaded, messages, offered)
                request = self._request(loaded, tokens, options, stop=rendered.stop, tools=offered)
                try:
                    async with aclosing(self._generate(loaded, tokens, request)) as chunks:
                        async for chunk in chunks:
                            yield chunk
                    return
                except Closed:  # unloaded before the answer started: load it again
                    continue

    async def tools_supported(self, model: str) -> bool:
        """Whether `model` can be offered tools: its chat template renders a tool list."""
        return (await self._ensure(model)).prompt.supports_tools

    async def is_chat_model(self, model: str) -> bool:
        return (await self._ensure(model)).prompt.is_chat

    def check_queue(self) -> None:
        """Raises TooManyRequests when every slot is busy and `max_queue` answers already wait."""
        slots = self.loaded.runtime.slots if self.loaded else (self.parallel or DEFAULT_SLOTS)
        if self.max_queue is not None and self.waiting - slots >= self.max_queue:
            queued = max(self.waiting - slots, 0)
            raise TooManyRequests(f"{queued} answers are already waiting for the model; try again soon")

    def slots(self) -> dict | None:
        """The loaded model's slots: total, busy, queued, cache use (None: nothing loaded)."""
        loaded = self.loaded
        return loaded.batcher.stats() if loaded else None

    @contextmanager
    def _queued(self) -> Iterator[None]:
        """Count this request among those waiting; refuse it when the queue is full."""
        self.check_queue()
        self.waiting += 1
        try:
            yield
        finally:
            self.waiting -= 1

    async def complete(self, model: str, prompt: str, options: GenerationOptions) -> AsyncGenerator[Chunk, None]:
        """Raw text completion of `prompt` (no chat template; special tokens written in it
        count as such, as Ollama's `raw` mode expects), in the same queue as chat."""
        with self._queued():
            while True:
                loaded = await self._ensure(model)
                tokens = await self._prepare(_raw_prompt, loaded, prompt)
                request = self._request(loaded, tokens, options, raw=True)
                try:
                    async with aclosing(self._generate(loaded, tokens, request)) as chunks:
                        async for chunk in chunks:
                            yield chunk
                    return
                except Closed:
                    continue

    async def _prepare(self, function: Callable[..., T], *args: Any) -> T:
        """Render and tokenize off the event loop, on one thread, so that answers reach the
        batch queue in the order they arrived."""
        return await asyncio.get_running_loop().run_in_executor(self._prompts, function, *args)

    def _request(
        self,
        loaded: LoadedModel,
        tokens: list[int],
        options: GenerationOptions,
        *,
        stop: list[str] | None = None,
        tools: list[dict] | None = None,
        raw: bool = False,
    ) -> Request:
        if not tokens:
            raise InvalidInput("the prompt is empty")
        if len(tokens) >= loaded.n_ctx:
            raise InvalidInput(f"the prompt takes {len(tokens)} tokens; the model's context holds {loaded.n_ctx}")
        return Request(
            sampling=resolve(options, loaded.sampling),
            max_tokens=options.max_tokens or loaded.n_ctx,
            stop=[*options.stop, *(stop or []), *loaded.stops],
            offered_tools={spec["function"]["name"] for spec in tools} if tools else None,
            json_mode=options.json_mode,
            strip_leading=not loaded.prompt.is_chat and not raw,
        )

    async def _generate(self, loaded: LoadedModel, tokens: list[int], request: Request) -> AsyncGenerator[Chunk, None]:
        """The answer from the model's batch thread. Raises Closed if the model is being unloaded."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        ended = asyncio.Event()

        def emit(item: object) -> None:  # on the batch thread
            loop.call_soon_threadsafe(queue.put_nowait, item)
            if isinstance(item, Outcome | BaseException):
                loop.call_soon_threadsafe(ended.set)

        job = Job(tokens, request, emit)
        loaded.batcher.submit(job)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, str):
                    yield Chunk(text=item)
                elif isinstance(item, Queued):
                    yield Chunk(queued=item.position)
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield Chunk(
                        text=item.held,
                        finish_reason=item.reason,
                        usage=Usage(len(tokens), item.completion_tokens, item.cached_tokens),
                        tool_calls=item.tool_calls,
                        refused_calls=item.refused or None,
                    )
                    return
        finally:
            if not ended.is_set():  # the consumer went away: free the slot before returning
                job.cancel.set()
                loaded.batcher.wake()
                await asyncio.shield(ended.wait())

    # --- embeddings ----------------------------------------------------------------------

    async def embed(self, model: str, texts: list[str]) -> tuple[list[list[float]], int]:
        """Embedding vectors of `texts` and the tokens they took.

        llama.cpp computes embeddings in a context made for it, so the model is opened a
        second time in embedding mode (kept for the last model asked for, on its own thread).
        Raises ModelNotFound, ModelLoadError.
        """
        async with self._embed_lock:
            if self._embedder is None or self._embedder[0] != model:
                path = self.store.model_path(model)
                if path is None:
                    raise ModelNotFound(f"model {model!r} is not installed")
                meta = await asyncio.to_thread(read_metadata, path)
                await self._close_embedder()
                executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embed-{model}")
                n_ctx = min(self.n_ctx, meta.get("context_length") or self.n_ctx)
                try:
                    llm = await asyncio.get_running_loop().run_in_executor(executor, self._open_embedder, path, n_ctx)
                except Exception as exc:
                    executor.shutdown(wait=False)
                    raise ModelLoadError(f"llama.cpp could not open {model!r} for embeddings: {exc}") from exc
                self._embedder = (model, llm, executor)
            _name, llm, executor = self._embedder
            result = await asyncio.get_running_loop().run_in_executor(executor, lambda: llm.create_embedding(texts))
        vectors = [item["embedding"] for item in sorted(result["data"], key=lambda item: item["index"])]
        return vectors, int(result.get("usage", {}).get("prompt_tokens") or 0)

    def _open_embedder(self, path: Path, n_ctx: int) -> Any:
        from llama_cpp import LLAMA_POOLING_TYPE_MEAN, Llama

        # Mean pooling: one vector a text (a GGUF without a pooling type would give one a token).
        return Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=self.n_threads,
            embedding=True,
            pooling_type=LLAMA_POOLING_TYPE_MEAN,
            verbose=False,
        )

    async def _close_embedder(self) -> None:
        if self._embedder is not None:
            _name, llm, executor = self._embedder
            self._embedder = None
            await asyncio.get_running_loop().run_in_executor(executor, llm.close)
            executor.shutdown(wait=False)

    # --- facts about models -----------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        return [
            ModelInfo(name=m.name, engine=self.name, context_length=m.context_length, details=m.to_dict())
            for m in self.store.list()
        ]

    async def context_length(self, model: str) -> int | None:
        if self.loaded and self.loaded.name == model:
            return self.loaded.n_ctx
        manifest = self.store.get(model)
        if manifest is None:
            return None
        return min(self.n_ctx, manifest.context_length or self.n_ctx)

    async def count_prompt_tokens(self, model: str, messages: list[dict]) -> int:
        loaded = await self._ensure(model)
        # Rendering and tokenizing are quick but not free; not on the event loop.
        return await asyncio.to_thread(_count_prompt, loaded, messages)

    async def close(self) -> None:
        await self.unload()
        await self._close_embedder()


def _render(loaded: LoadedModel, messages: list[dict], tools: list[dict] | None) -> Rendered:
    try:
        return loaded.prompt.render(messages, tools)
    except ValueError as exc:  # the template's own raise_exception: the messages break its rules
        raise InvalidInput(f"the model's chat template refused the conversation: {exc}") from exc


def _chat_prompt(loaded: LoadedModel, messages: list[dict], tools: list[dict] | None) -> tuple[Rendered, list[int]]:
    rendered = _render(loaded, messages, tools)
    return rendered, _tokens(loaded, rendered.text)


def _raw_prompt(loaded: LoadedModel, prompt: str) -> list[int]:
    """Raw completion: special tokens written in the prompt count as such (Ollama's `raw`)."""
    return loaded.runtime.tokenize(prompt, add_bos=True, special=True)


def _count_prompt(loaded: LoadedModel, messages: list[dict]) -> int:
    return len(_tokens(loaded, _render(loaded, messages, None).text))


def _tokens(loaded: LoadedModel, text: str) -> list[int]:
    """A rendered chat prompt as tokens. A template writes its own BOS and turn markers, which
    must become special tokens; a base model's transcript gets the BOS its vocabulary asks
    for, and its text (what users wrote) can never turn into control tokens."""
    chat = loaded.prompt.is_chat
    return loaded.runtime.tokenize(text, add_bos=not chat, special=chat)
