"""Which engine serves a model: `ollama/<name>` and `openai/<name>` go to the fleet of upstream
servers of that kind (engines/fleet.py), everything else is a GGUF in the local store served
by llama.cpp."""

from __future__ import annotations

from jarvis.config import Settings
from jarvis.engines.base import Engine, ModelInfo
from jarvis.engines.fleet import Fleet
from jarvis.engines.llama_cpp import LlamaCppEngine
from jarvis.errors import ModelNotFound
from jarvis.models.fit import memory_limit
from jarvis.models.store import ModelStore

_REMOTE_SETTING = {"ollama": "OLLAMA_HOST", "openai": "JARVIS_OPENAI_BASE_URL"}


class EngineRouter:
    def __init__(self, local: LlamaCppEngine, remotes: dict[str, Fleet]) -> None:
        self.local = local
        self.remotes = remotes

    @classmethod
    def from_settings(cls, settings: Settings, store: ModelStore) -> EngineRouter:
        remotes: dict[str, Fleet] = {}
        for kind in ("ollama", "openai"):
            upstreams = [upstream for upstream in settings.fleet if upstream.kind == kind]
            if upstreams:
                remotes[kind] = Fleet.of(kind, upstreams)
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
                raise ModelNotFound(
                    f"model {model!r} needs the {prefix} engine; set {_REMOTE_SETTING[prefix]} or JARVIS_UPSTREAMS"
                )
            return engine, rest
        if self.local.store.get(model) is None:
            raise ModelNotFound(f"model {model!r} is not installed")
        return self.local, model

    async def check(self, model: str) -> tuple[Engine, str]:
        """Like `route`, and for a remote engine also asks its upstreams (cached briefly) whether
        one has the model. Raises ModelNotFound, EngineUnavailable (those that may have it are
        down), or an upstream's error."""
        engine, name = self.route(model)
        if isinstance(engine, Fleet):
            await engine.serving(name)
        return engine, name

    def upstreams(self) -> list[dict]:
        """Each upstream server: name, kind, up, outstanding (answers in flight), models (its filter)."""
        return [status for fleet in self.remotes.values() for status in fleet.status()]

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
