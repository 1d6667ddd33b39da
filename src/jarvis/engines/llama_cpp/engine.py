"""Embedded llama.cpp through llama-cpp-python.

Generation runs on one dedicated thread per loaded model, never on the event loop.
One generation per model at a time: callers wait on an asyncio.Lock, which hands the
model over in arrival order (FIFO). Closing the stream sets a flag that the generating
thread checks after every token, so it stops within one token and the lock is released
only once the thread is done with the model. The token loop itself is in generation.py,
prompts in prompt.py, sampler settings in sampling.py, tool calls in tool_calls.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from jarvis.engines.base import Chunk, GenerationOptions, ModelInfo, Usage
from jarvis.engines.llama_cpp.generation import Request, Vocabulary, generate
from jarvis.engines.llama_cpp.prompt import ChatPrompt
from jarvis.engines.llama_cpp.sampling import model_defaults, resolve
from jarvis.errors import InvalidInput, ModelLoadError, ModelNotFound, TooManyRequests
from jarvis.models.gguf_info import read_metadata
from jarvis.models.store import ModelStore

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    name: str
    path: Path
    llm: object  # llama_cpp.Llama
    n_ctx: int
    prompt: ChatPrompt
    vocab: Vocabulary
    sampling: dict  # the model's own sampler settings (GGUF keys, Ollama params)
    stops: list[str]  # the publisher's stop sequences (Ollama params)
    reuse_prefix: bool  # whether a prompt may start from the cached tokens of the last one
    load_seconds: float
    executor: ThreadPoolExecutor
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LlamaCppEngine:
    name = "llama_cpp"

    def __init__(
        self, store: ModelStore, *, n_ctx: int = 4096, n_threads: int | None = None, max_queue: int | None = None
    ) -> None:
        self.max_queue = max_queue
        self.waiting = 0  # generations started and not finished (running or queued)
        self.on_event: Callable[[str, dict], None] | None = None  # model.loaded / model.unloaded
        self.store = store
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.loaded: LoadedModel | None = None
        self.state = "idle"  # idle | loading | ready | error
        self.last_error: str | None = None
        self._switch = asyncio.Lock()
        self._embedder: tuple[str, object, ThreadPoolExecutor] | None = None
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
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{name}")
            started = time.perf_counter()
            try:
                llm, prompt, vocab = await asyncio.get_running_loop().run_in_executor(executor, self._open, path, meta)
            except Exception as exc:
                executor.shutdown(wait=False)
                self.state, self.last_error = "error", str(exc)
                raise ModelLoadError(f"llama.cpp could not load {name!r}: {exc}") from exc
            self.loaded = LoadedModel(
                name=name,
                path=path,
                llm=llm,
                n_ctx=llm.n_ctx(),
                prompt=prompt,
                vocab=vocab,
                sampling=model_defaults(meta.get("sampling") or {}, parameters),
                stops=[s for s in parameters.get("stop") or [] if isinstance(s, str) and s][:16],
                reuse_prefix=_prefix_reusable(llm),
                load_seconds=time.perf_counter() - started,
                executor=executor,
            )
            self.state, self.last_error = "ready", None
            log.info("loaded %s in %.2fs (n_ctx=%d)", name, self.loaded.load_seconds, self.loaded.n_ctx)
            self._emit("model.loaded", {"model": name, "load_seconds": round(self.loaded.load_seconds, 3),
                                        "context_length": self.loaded.n_ctx})
            return self.loaded

    def _open(self, path: Path, meta: dict):
        from llama_cpp import Llama

        n_ctx = min(self.n_ctx, meta.get("context_length") or self.n_ctx)
        llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=self.n_threads, verbose=False)
        prompt = ChatPrompt(
            llm.metadata.get("tokenizer.chat_template"),
            eos_token=llm._model.token_get_text(llm.token_eos()),
            bos_token=llm._model.token_get_text(llm.token_bos()),
        )
        return llm, prompt, Vocabulary(llm)

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
        async with loaded.lock:  # wait for the running generation to let go
            await asyncio.get_running_loop().run_in_executor(loaded.executor, loaded.llm.close)
        loaded.executor.shutdown(wait=False)
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
    ) -> AsyncIterator[Chunk]:
        """The answer to `messages`; with `tools` (OpenAI-style specs) the last chunk may carry
        calls of those tools instead of text. Raises ModelNotFound, ModelLoadError,
        TooManyRequests, InvalidInput (the model's template refuses the messages)."""
        with self._queued():
            while True:
                loaded = await self._ensure(model)
                async with loaded.lock:
                    if self.loaded is not loaded:  # swapped out while we waited in the queue
                        continue
                    offered = tools if tools and loaded.prompt.supports_tools else None
                    rendered = await asyncio.to_thread(_render, loaded, messages, offered)
                    tokens = await asyncio.to_thread(_tokens, loaded, rendered.text)
                    request = self._request(loaded, tokens, options, stop=rendered.stop, tools=offered)
                    async for chunk in self._generate(loaded, request):
                        yield chunk
                    return

    async def tools_supported(self, model: str) -> bool:
        """Whether `model` can be offered tools: its chat template renders a tool list."""
        return (await self._ensure(model)).prompt.supports_tools

    async def is_chat_model(self, model: str) -> bool:
        return (await self._ensure(model)).prompt.is_chat

    def check_queue(self) -> None:
        """Raises TooManyRequests when `max_queue` answers already wait behind the running one."""
        if self.max_queue is not None and self.waiting > self.max_queue:
            raise TooManyRequests(f"{self.waiting - 1} answers are already waiting for the model; try again soon")

    @contextmanager
    def _queued(self):
        """Count this request among those waiting; refuse it when the queue is full."""
        self.check_queue()
        self.waiting += 1
        try:
            yield
        finally:
            self.waiting -= 1

    async def complete(self, model: str, prompt: str, options: GenerationOptions) -> AsyncIterator[Chunk]:
        """Raw text completion of `prompt` (no chat template; special tokens written in it
        count as such, as Ollama's `raw` mode expects), in the same queue as chat."""
        with self._queued():
            while True:
                loaded = await self._ensure(model)
                async with loaded.lock:
                    if self.loaded is not loaded:
                        continue
                    tokens = await asyncio.to_thread(loaded.llm.tokenize, prompt.encode(), True, True)
                    async for chunk in self._generate(loaded, self._request(loaded, tokens, options, raw=True)):
                        yield chunk
                    return

    def _request(
        self, loaded: LoadedModel, tokens: list[int], options: GenerationOptions, *, stop: list[str] = (), tools=None,
        raw: bool = False,
    ) -> Request:
        if len(tokens) >= loaded.n_ctx:
            raise InvalidInput(f"the prompt takes {len(tokens)} tokens; the model's context holds {loaded.n_ctx}")
        return Request(
            tokens=tokens,
            sampling=resolve(options, loaded.sampling),
            max_tokens=options.max_tokens or loaded.n_ctx,
            stop=[*options.stop, *stop, *loaded.stops],
            offered_tools={spec["function"]["name"] for spec in tools} if tools else None,
            json_mode=options.json_mode,
            strip_leading=not loaded.prompt.is_chat and not raw,
            reuse_prefix=loaded.reuse_prefix,
        )

    async def _generate(self, loaded: LoadedModel, request: Request) -> AsyncIterator[Chunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        put = queue.put_nowait

        def work() -> None:
            try:
                outcome = generate(loaded.llm, loaded.vocab, request, lambda text: loop.call_soon_threadsafe(put, text), cancel)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                loop.call_soon_threadsafe(put, exc)
            else:
                loop.call_soon_threadsafe(put, outcome)

        done = loop.run_in_executor(loaded.executor, work)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, str):
                    yield Chunk(text=item)
                    continue
                if isinstance(item, BaseException):
                    raise item
                yield Chunk(
                    text=item.held,
                    finish_reason=item.reason,
                    usage=Usage(len(request.tokens), item.completion_tokens, item.cached_tokens),
                    tool_calls=item.tool_calls,
                    refused_calls=item.refused or None,
                )
                return
        finally:
            cancel.set()
            await asyncio.shield(done)

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

    def _open_embedder(self, path: Path, n_ctx: int):
        from llama_cpp import LLAMA_POOLING_TYPE_MEAN, Llama

        # Mean pooling: one vector a text (a GGUF without a pooling type would give one a token).
        return Llama(
            model_path=str(path), n_ctx=n_ctx, n_threads=self.n_threads, embedding=True,
            pooling_type=LLAMA_POOLING_TYPE_MEAN, verbose=False,
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


def _prefix_reusable(llm) -> bool:
    """Whether a prompt may continue from the cached tokens of the previous one. Not for
    sliding-window attention (Gemma 3): its cache forgets what lies outside the window, and
    greedy answers after reuse differed from fresh ones (the same request asked twice gave two
    texts); not for recurrent or hybrid models, whose state cannot be cut back to a prefix.
    Those evaluate every prompt from scratch."""
    import llama_cpp

    model = llm._model.model
    return not (llama_cpp.llama_model_n_swa(model) > 0 or llama_cpp.llama_model_is_recurrent(model)
                or llama_cpp.llama_model_is_hybrid(model))


def _render(loaded: LoadedModel, messages: list[dict], tools: list[dict] | None):
    try:
        return loaded.prompt.render(messages, tools)
    except ValueError as exc:  # the template's own raise_exception: the messages break its rules
        raise InvalidInput(f"the model's chat template refused the conversation: {exc}") from exc


def _count_prompt(loaded: LoadedModel, messages: list[dict]) -> int:
    return len(_tokens(loaded, _render(loaded, messages, None).text))


def _tokens(loaded: LoadedModel, text: str) -> list[int]:
    """A rendered chat prompt as tokens. A template writes its own BOS and turn markers, which
    must become special tokens; a base model's transcript gets the BOS its vocabulary asks
    for, and its text (what users wrote) can never turn into control tokens."""
    chat = loaded.prompt.is_chat
    return loaded.llm.tokenize(text.encode(), add_bos=not chat, special=chat)
