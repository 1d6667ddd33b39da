"""Which engine serves a model: `ollama/<name>` and `openai/<name>` go to the remote engines,
everything else is a GGUF in the local store served by llama.cpp."""

from __future__ import annotations

import time

from jarvis.config import Settings
from jarvis.engines.base import Engine, ModelInfo
from jarvis.engines.llama_cpp import LlamaCppEngine
from jarvis.engines.ollama import OllamaEngine
from jarvis.engines.openai import OpenAIEngine
from jarvis.errors import ModelNotFound
from jarvis.models.fit import memory_limit
from jarvis.models.store import ModelStore

_REMOTE_SETTING = {"ollama": "OLLAMA_HOST", "openai": "JARVIS_OPENAI_BASE_URL"}
_LIST_TTL = 30.0


class EngineRouter:
    def __init__(self, local: LlamaCppEngine, remotes: dict[str, Engine]) -> None:
        self.local = local
        self.remotes = remotes
        self._listed: dict[str, tuple[float, set[str]]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, store: ModelStore) -> EngineRouter:
        remotes: dict[str, Engine] = {}
        if settings.ollama_url:
            remotes["ollama"] = OllamaEngine(settings.ollama_url)
        if settings.openai_base_url:
            remotes["openai"] = OpenAIEngine(settings.openai_base_url, api_key=settings.openai_api_key)
        local = LlamaCppEngine(
            store,
            n_ctx=settings.n_ctx,
            n_threads=settings.n_threads,
            max_queue=settings.max_queue,
            parallel=settings.parallel,
            memory_limit=memory_limit(settings),
        )
        return cls(local, remotes)

    def route(self, model: str) -> tuple[Engine, str]:
        """The engine for `model` and the name that engine knows it by. Raises ModelNotFound."""
        prefix, _, rest = model.partition("/")
        if prefix in _REMOTE_SETTING and rest:
            engine = self.remotes.get(prefix)
            if engine is None:
                raise ModelNotFound(f"model {model!r} needs the {prefix} engine; set {_REMOTE_SETTING[prefix]}")
            return engine, rest
        if self.local.store.get(model) is None:
            raise ModelNotFound(f"model {model!r} is not installed")
        return self.local, model

    async def check(self, model: str) -> tuple[Engine, str]:
        """Like `route`, and for a remote engine also asks it (cached briefly) whether it has the model."""
        engine, name = self.route(model)
        if engine is self.local:
            return engine, name
        cached = self._listed.get(engine.name)
        if cached is None or time.monotonic() - cached[0] > _LIST_TTL or name not in cached[1]:
            names = {info.name for info in await engine.list_models()}
            self._listed[engine.name] = (time.monotonic(), names)
            cached = self._listed[engine.name]
        if name not in cached[1] and f"{name}:latest" not in cached[1]:
            raise ModelNotFound(f"{engine.name} has no model {name!r}")
        return engine, name

    async def list_models(self) -> list[ModelInfo]:
        """Local models, then each remote engine's (a remote that is down is left out)."""
        models = await self.local.list_models()
        for prefix, engine in self.remotes.items():
            try:
                remote = await engine.list_models()
            except Exception:  # an unreachable remote must not hide the local models
                continue
            models += [ModelInfo(f"{prefix}/{m.name}", engine.name, m.context_length, m.details) for m in remote]
        return models

    async def close(self) -> None:
        await self.local.close()
        for engine in self.remotes.values():
            await engine.close()
