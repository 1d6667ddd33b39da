"""Several servers of one kind (OpenAI-compatible or Ollama) as one engine.

A model goes to the upstreams that serve it (their model filter, else their model list,
cached briefly), the one with the fewest answers outstanding first (ties take turns). An
upstream that cannot be reached is marked down and skipped for a few seconds, then tried
again. A request that an upstream refuses or cannot take before its first token (not
reachable, 429, 5xx) goes to the next upstream; once a token has been yielded, a failure is
the answer's, as with a single server.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing, contextmanager
from fnmatch import fnmatchcase
from typing import Literal

from jarvis.config import Upstream
from jarvis.engines.base import Chunk, GenerationOptions, ModelInfo, estimate_prompt_tokens
from jarvis.engines.ollama import OllamaEngine
from jarvis.engines.openai import OpenAIEngine
from jarvis.errors import EngineError, EngineRefused, EngineUnavailable, ModelNotFound

LIST_TTL = 30.0  # seconds an upstream's model list is trusted
DOWN_SECONDS = 5.0  # an unreachable upstream is skipped this long before it is tried again

# Failures before the first token that another upstream may not have.
_FAIL_OVER = (EngineUnavailable, EngineRefused)


class Member:
    """One upstream of a fleet: its engine, model filter and state."""

    def __init__(self, config: Upstream, engine: OpenAIEngine | OllamaEngine) -> None:
        self.config = config
        self.engine = engine
        self.outstanding = 0  # answers and requests in flight
        self.up = True  # false from a failed contact until the next successful one
        self.retry_at = 0.0  # monotonic time before which a down member is skipped
        self._listed: tuple[float, set[str]] | None = None

    @property
    def label(self) -> str:
        return self.config.label

    @property
    def skipped(self) -> bool:
        return not self.up and time.monotonic() < self.retry_at

    def status(self) -> dict:
        return {
            "name": self.label,
            "kind": self.config.kind,
            "up": self.up,
            "outstanding": self.outstanding,
            "models": self.config.models,
        }

    @contextmanager
    def busy(self) -> Iterator[None]:
        self.outstanding += 1
        try:
            yield
        finally:
            self.outstanding -= 1

    def reached(self) -> None:
        self.up = True

    def failed(self, error: Exception) -> None:
        if isinstance(error, EngineUnavailable):
            self.up = False
            self.retry_at = time.monotonic() + DOWN_SECONDS

    def filtered(self, name: str) -> bool | None:
        """Whether the model filter lets `name` through; None without a filter."""
        if self.config.models is None:
            return None
        return any(fnmatchcase(name, pattern) for pattern in self.config.models)

    async def serves(self, name: str, *, recheck: bool = False) -> bool | None:
        """Whether this upstream serves `name`: its filter, else its model list (cached; with
        `recheck` asked again when the name is missing; not asked while the upstream is
        skipped); None when that is unknown. Raises the engine's errors when the list fails."""
        filtered = self.filtered(name)
        if filtered is not None:
            return filtered
        if self.skipped:
            return self._has(name) or None
        fresh = self._listed is not None and time.monotonic() - self._listed[0] <= LIST_TTL
        if not fresh or (recheck and not self._has(name)):
            await self.list_models()
        return self._has(name)

    async def list_models(self) -> list[ModelInfo]:
        """The upstream's models, its filter applied. Raises the engine's errors."""
        try:
            with self.busy():
                models = await self.engine.list_models()
        except EngineError as exc:
            self.failed(exc)
            raise
        self.reached()
        self._listed = (time.monotonic(), {model.name for model in models})
        return [model for model in models if self.filtered(model.name) is not False]

    def _has(self, name: str) -> bool:
        return self._listed is not None and (name in self._listed[1] or f"{name}:latest" in self._listed[1])


class Fleet:
    """The `openai` or `ollama` engine: every upstream of that kind behind one Engine."""

    def __init__(self, kind: Literal["openai", "ollama"], members: list[Member]) -> None:
        self.name: str = kind
        self.members = members
        self._turn = itertools.count()

    @classmethod
    def of(cls, kind: Literal["openai", "ollama"], upstreams: list[Upstream]) -> Fleet:
        members = []
        for upstream in upstreams:
            engine: OpenAIEngine | OllamaEngine
            if kind == "openai":
                engine = OpenAIEngine(upstream.url, api_key=upstream.key)
            else:
                engine = OllamaEngine(upstream.url)
            members.append(Member(upstream, engine))
        return cls(kind, members)

    def status(self) -> list[dict]:
        return [member.status() for member in self.members]

    async def serving(self, model: str) -> list[Member]:
        """The upstreams that serve `model`.

        Raises ModelNotFound (none serves it), EngineUnavailable (those that might are down),
        or the error of a model list that failed."""
        # Fresh lists first; only when none has the model are the lists asked again (a model
        # pulled since), so a model one upstream serves costs the others no request each time.
        for recheck in (False, True):
            found: list[Member] = []
            unknown: list[Member] = []  # down, or their list failed: they may serve it
            error: Exception | None = None
            answers = await asyncio.gather(
                *(member.serves(model, recheck=recheck) for member in self.members), return_exceptions=True
            )
            for member, serves in zip(self.members, answers, strict=True):
                if isinstance(serves, EngineError):
                    unknown.append(member)
                    error = serves
                elif isinstance(serves, BaseException):
                    raise serves
                elif serves is None:
                    unknown.append(member)
                elif serves:
                    found.append(member)
            if found:
                return found
        if error is not None and len(unknown) == len(self.members) == 1:
            raise error  # one server: its own error, as before there were fleets
        if unknown:
            names = ", ".join(member.label for member in unknown)
            why = f": {error.message}" if isinstance(error, EngineError) else ""
            raise EngineUnavailable(f"no {self.name} upstream that may serve {model!r} is reachable ({names}){why}")
        raise ModelNotFound(f"{self.name} has no model {model!r}")

    async def _order(self, model: str) -> list[Member]:
        """The upstreams serving `model`, for one request: those not skipped first, then the
        fewest outstanding, ties in turn (each request moves the turn on). Raises as `serving`."""
        found = await self.serving(model)
        turn = next(self._turn)
        place = {id(member): (index - turn) % len(self.members) for index, member in enumerate(self.members)}
        return sorted(found, key=lambda member: (member.skipped, member.outstanding, place[id(member)]))

    async def stream(
        self, model: str, messages: list[dict], options: GenerationOptions, tools: list[dict] | None = None
    ) -> AsyncGenerator[Chunk, None]:
        error: Exception | None = None
        for member in await self._order(model):
            with member.busy():
                async with aclosing(member.engine.stream(model, messages, options, tools)) as chunks:
                    try:
                        first = await anext(chunks)
                    except _FAIL_OVER as exc:
                        member.failed(exc)
                        error = exc
                        continue
                    member.reached()
                    yield first
                    async for chunk in chunks:  # from here on a failure is the answer's
                        yield chunk
                    return
        assert error is not None  # serving() returns at least one member
        raise error

    async def embed(self, model: str, texts: list[str]) -> tuple[list[list[float]], int]:
        error: Exception | None = None
        for member in await self._order(model):
            with member.busy():
                try:
                    result = await member.engine.embed(model, texts)
                except _FAIL_OVER as exc:
                    member.failed(exc)
                    error = exc
                    continue
            member.reached()
            return result
        assert error is not None
        raise error

    async def list_models(self) -> list[ModelInfo]:
        """What the reachable upstreams serve (their filters applied), each name once. Raises
        the last upstream's error when none could list."""
        models: dict[str, ModelInfo] = {}
        error: Exception | None = None
        for member in self.members:
            if member.skipped:
                continue
            try:
                listed = await member.list_models()
            except EngineError as exc:
                error = exc
                continue
            for info in listed:
                models.setdefault(info.name, info)
        if not models and error is not None:
            raise error
        return list(models.values())

    async def tools_supported(self, model: str) -> bool:
        return True  # the server renders the tools, or says it cannot

    async def context_length(self, model: str) -> int | None:
        return None  # neither API tells

    async def count_prompt_tokens(self, model: str, messages: list[dict]) -> int:
        return estimate_prompt_tokens(messages)

    async def close(self) -> None:
        for member in self.members:
            await member.engine.close()
