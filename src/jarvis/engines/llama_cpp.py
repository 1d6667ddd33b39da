"""Embedded llama.cpp through llama-cpp-python.

Generation runs on one dedicated thread per loaded model, never on the event loop.
One generation per model at a time: callers wait on an asyncio.Lock, which hands the
model over in arrival order (FIFO). Closing the stream sets a flag that the generating
thread checks after every token, so it stops within one token and the lock is released
only once the thread is done with the model.
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
from jarvis.errors import ModelLoadError, ModelNotFound, TooManyRequests
from jarvis.models.gguf_info import read_metadata
from jarvis.models.store import ModelStore

log = logging.getLogger(__name__)

_DONE = object()


@dataclass
class LoadedModel:
    name: str
    path: Path
    llm: object  # llama_cpp.Llama
    n_ctx: int
    format_prompt: Callable[[list[dict]], str] | None
    fold_system: bool  # the chat format drops system messages: fold them into the first user turn
    load_seconds: float
    executor: ThreadPoolExecutor
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LlamaCppEngine:
    name = "llama_cpp"
    # llama-cpp-python calls tools only through special chat formats (functionary, …) that
    # the bundled model was not trained for; plugin commands work with it instead.
    supports_tools = False

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
            await self._unload_locked()
            self.state = "loading"
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{name}")
            started = time.perf_counter()
            try:
                llm, format_prompt, fold_system = await asyncio.get_running_loop().run_in_executor(
                    executor, self._open, path, meta
                )
            except Exception as exc:
                executor.shutdown(wait=False)
                self.state, self.last_error = "error", str(exc)
                raise ModelLoadError(f"llama.cpp could not load {name!r}: {exc}") from exc
            self.loaded = LoadedModel(
                name=name,
                path=path,
                llm=llm,
                n_ctx=llm.n_ctx(),
                format_prompt=format_prompt,
                fold_system=fold_system,
                load_seconds=time.perf_counter() - started,
                executor=executor,
            )
            self.state, self.last_error = "ready", None
            log.info("loaded %s in %.2fs (n_ctx=%d)", name, self.loaded.load_seconds, self.loaded.n_ctx)
            self._emit("model.loaded", {"model": name, "load_seconds": round(self.loaded.load_seconds, 3),
                                        "context_length": self.loaded.n_ctx})
            return self.loaded

    def _open(self, path: Path, meta: dict):
        from llama_cpp import Llama, llama_chat_format

        n_ctx = min(self.n_ctx, meta.get("context_length") or self.n_ctx)
        llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=self.n_threads, verbose=False)
        template = llm.metadata.get("tokenizer.chat_template")
        fold_system = False
        if template:
            formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(llm.token_eos()),
                bos_token=llm._model.token_get_text(llm.token_bos()),
            )
        elif (meta.get("architecture") or "").startswith("gemma"):
            # A Gemma GGUF without a template (the bundled base model): llama-cpp-python
            # would fall back to the llama-2 format, which Gemma answers with end-of-turn.
            llm.chat_format = "gemma"
            formatter = llama_chat_format.format_gemma
            fold_system = True
        else:
            formatter = None
        format_prompt = (lambda messages: formatter(messages=messages).prompt) if formatter else None
        return llm, format_prompt, fold_system

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
        with self._queued():
            while True:
                loaded = await self._ensure(model)
                async with loaded.lock:
                    if self.loaded is not loaded:  # swapped out while we waited in the queue
                        continue
                    async for chunk in self._generate(loaded, messages, options):
                        yield chunk
                    return

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
        """Raw text completion of `prompt` (no chat template), in the same queue as chat."""
        with self._queued():
            while True:
                loaded = await self._ensure(model)
                async with loaded.lock:
                    if self.loaded is not loaded:
                        continue
                    async for chunk in self._generate(loaded, None, options, prompt=prompt):
                        yield chunk
                    return

    async def _generate(
        self, loaded: LoadedModel, messages: list[dict] | None, options: GenerationOptions, *, prompt: str | None = None
    ) -> AsyncIterator[Chunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()
        put = queue.put_nowait
        kwargs = {
            "temperature": options.temperature,
            "top_p": options.top_p,
            "max_tokens": options.max_tokens,
            "seed": options.seed,
            "stop": options.stop or None,
            "response_format": {"type": "json_object"} if options.json_mode else None,
        }
        kwargs = {key: value for key, value in kwargs.items() if value is not None}

        def work() -> None:
            try:
                # Evaluate every prompt from scratch. llama-cpp-python reuses the cached prefix
                # of the previous prompt, and with the sliding-window KV cache of Gemma 3 that
                # changes the answer: the same greedy request asked twice gives two different
                # texts. Correct and repeatable beats the saved prompt evaluation.
                loaded.llm.reset()
                if prompt is None:
                    parts = loaded.llm.create_chat_completion(messages=messages, stream=True, **kwargs)
                else:
                    kwargs.pop("response_format", None)
                    parts = loaded.llm.create_completion(prompt=prompt, stream=True, **kwargs)
                try:
                    for part in parts:
                        if stop.is_set():
                            break
                        choice = part["choices"][0]
                        text = (choice["delta"].get("content") if prompt is None else choice.get("text")) or ""
                        reason = choice.get("finish_reason")
                        if text or reason:
                            loop.call_soon_threadsafe(put, (text, reason))
                finally:
                    parts.close()
            except BaseException as exc:  # handed to the consumer, which re-raises it
                loop.call_soon_threadsafe(put, exc)
            else:
                loop.call_soon_threadsafe(put, _DONE)

        if prompt is None:
            messages = _fold_system(messages) if loaded.fold_system else messages
            prompt_tokens = await self._count_in_thread(loaded, messages)
        else:
            prompt_tokens = len(await asyncio.to_thread(loaded.llm.tokenize, prompt.encode(), True, True))
        done = loop.run_in_executor(loaded.executor, work)
        produced = 0
        reason = None
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                text, reason = item
                if text:
                    produced += 1
                    yield Chunk(text=text)
            yield Chunk(finish_reason=reason or "stop", usage=Usage(prompt_tokens, produced))
        finally:
            stop.set()
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
        return await self._count_in_thread(loaded, messages)

    async def _count_in_thread(self, loaded: LoadedModel, messages: list[dict]) -> int:
        # Tokenizing is quick but not free; it must not run on the event loop either.
        return await asyncio.to_thread(_count_prompt, loaded, messages)

    async def close(self) -> None:
        await self.unload()
        await self._close_embedder()


def _fold_system(messages: list[dict]) -> list[dict]:
    """System text moved to the start of the first user turn, as Gemma's own template does
    (llama-cpp-python's `gemma` format silently drops system messages)."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system" and m.get("content"))
    rest = [m for m in messages if m["role"] != "system"]
    if not system:
        return rest
    for index, message in enumerate(rest):
        if message["role"] == "user":
            return [*rest[:index], {**message, "content": f"{system}\n\n{message['content']}"}, *rest[index + 1 :]]
    return [{"role": "user", "content": system}, *rest]


def _count_prompt(loaded: LoadedModel, messages: list[dict]) -> int:
    """The exact prompt length when the chat format is known, else the sum over messages."""
    if loaded.fold_system:
        messages = _fold_system(messages)
    llm = loaded.llm
    if loaded.format_prompt:
        return len(llm.tokenize(loaded.format_prompt(messages).encode(), add_bos=True, special=True))
    return sum(len(llm.tokenize(m["content"].encode(), add_bos=False)) + 4 for m in messages)
