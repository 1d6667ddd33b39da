"""Chat sessions and replies.

A reply is prepared first (every check that can fail on the client's input runs before
anything is written), then streamed: the user message and an assistant row marked
`streaming` are stored before the first token, the growing answer is flushed about once a
second, and the final row records why it ended: complete, cancelled (the client asked),
disconnected (the client went away), or error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.chat.prompt import build_messages, fit_to_context
from jarvis.chat.tool_choice import wanted_tools
from jarvis.config import Settings
from jarvis.engines.base import Chunk, CompletionEngine, Engine, GenerationOptions, Usage
from jarvis.engines.router import EngineRouter
from jarvis.errors import InvalidInput, JarvisError, NotFound, PayloadTooLarge, SessionNotFound
from jarvis.memory.service import MemoryService, encode_ids, render_for_prompt
from jarvis.plugins.manager import CommandCall, PluginManager
from jarvis.plugins.types import Context
from jarvis.storage import repos
from jarvis.storage.db import Database
from jarvis.storage.tables import ChatMessage, ChatSession, new_id, utcnow

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
MAX_TOOL_ROUNDS = 4  # tool calls a model may chain before it must answer in words
TITLE_CHARS = 60


@dataclass
class Started:
    session_id: str
    user_message_id: str
    message_id: str
    model: str


@dataclass
class Token:
    text: str


@dataclass
class Queued:
    position: int  # the answer waits for a free slot; 1: next


@dataclass
class Finished:
    message: ChatMessage
    usage: Usage | None
    tool_calls: list[dict] | None = None  # calls of the caller's own tools, for it to run


@dataclass
class Failed:
    message: ChatMessage
    code: str
    error: str
    status: int = 502  # the HTTP status the failure maps to

    def as_error(self, **details: Any) -> JarvisError:
        """The failure as the service's error, for answers that are not streamed."""
        error = JarvisError(self.error, details=details)
        error.status_code, error.code = self.status, self.code
        return error


@dataclass
class Reply:
    """A checked request for an answer; iterate `events()` to run it."""

    service: ChatService
    session: ChatSession | None
    session_id: str
    text: str
    model: str
    engine: Engine | None  # None when a plugin command answers instead of a model
    engine_model: str
    messages: list[dict]
    options: GenerationOptions
    command: CommandCall | None = None
    persist: bool = True  # False: answer without storing anything (OpenAI/Ollama calls with no session)
    client_tools: list[dict] | None = None  # tools the caller runs itself (OpenAI/Ollama `tools`)
    user: str = "default"  # who asks: sessions belong to their user
    memory_ids: list[int] = field(default_factory=list)  # memories added to the prompt
    received: float = field(
        default_factory=time.perf_counter
    )  # when the request was taken up (ttft_ms counts from here)
    # Set by the caller before closing the stream to say why it stopped early.
    stop_status: str = "disconnected"

    def events(self) -> AsyncGenerator[Started | Queued | Token | Finished | Failed, None]:
        return self.service._run(self)


class ChatService:
    def __init__(
        self, db: Database, engines: EngineRouter, settings: Settings, *, plugins: PluginManager | None = None
    ) -> None:
        self.db = db
        self.engines = engines
        self.settings = settings
        self.plugins = plugins
        self.memory: MemoryService | None = None  # when the service graph has one
        self.services: Any = None  # the whole graph (jarvis.services.Services), handed to plugins through their Context
        self.replica_id: str | None = None  # stored with each answer being written (jarvis/replicas.py)
        # called with each answer a model finished (any status) and the engine's name: metrics
        self.on_answer: Callable[[ChatMessage, str], None] | None = None
        self._background: set[asyncio.Task] = set()

    # --- sessions ------------------------------------------------------------------

    async def create_session(
        self,
        *,
        user: str = "default",
        title: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
    ) -> ChatSession:
        if model:
            self.engines.route(model)
        async with self.db.session() as db:
            return await repos.create_session(db, user_id=user, title=title, model=model, system_prompt=system_prompt)

    @staticmethod
    async def _owned(db: AsyncSession, session_id: str, user: str) -> ChatSession:
        """The session if it is `user`'s; anyone else's is as unknown as a missing one."""
        session = await repos.get_session(db, session_id)
        if session is None or session.user_id != user:
            raise SessionNotFound(f"no chat session {session_id!r}")
        return session

    async def get_session(self, session_id: str, *, user: str = "default") -> tuple[ChatSession, list[ChatMessage]]:
        async with self.db.session() as db:
            session = await self._owned(db, session_id, user)
            return session, list(await repos.list_messages(db, session_id))

    async def history(self, session_id: str, *, user: str = "default") -> list[ChatMessage]:
        """Messages of a session; an id with nothing stored yet gives an empty list. Raises
        SessionNotFound for another user's session."""
        async with self.db.session() as db:
            if await repos.get_session(db, session_id) is None:
                return []
            await self._owned(db, session_id, user)
            return list(await repos.list_messages(db, session_id))

    async def list_sessions(
        self, *, user: str = "default", limit: int, offset: int, text: str | None = None
    ) -> tuple[list[tuple[ChatSession, int]], int]:
        """`user`'s sessions, most recently active first; `text` keeps those whose title or a
        message contains it (any case)."""
        async with self.db.session() as db:
            rows, total = await repos.list_sessions(db, user_id=user, limit=limit, offset=offset, text=text)
            counts = await repos.message_counts(db, [row.id for row in rows])
            return [(row, counts.get(row.id, 0)) for row in rows], total

    async def update_session(
        self,
        session_id: str,
        *,
        user: str = "default",
        title: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
    ) -> ChatSession:
        """Change what is given; an empty `system_prompt` removes it. Raises SessionNotFound,
        ModelNotFound for a model no engine serves."""
        if model:
            self.engines.route(model)
        async with self.db.session() as db:
            session = await self._owned(db, session_id, user)
            if title is not None:
                session.title = title
            if model is not None:
                session.model = model
            if system_prompt is not None:
                session.system_prompt = system_prompt or None
            return session

    async def rewind(self, session_id: str, message_id: str, *, user: str = "default") -> list[str]:
        """Delete `message_id` and every later message of the session; their ids, oldest first.
        Raises SessionNotFound, NotFound for a message that is not in the session."""
        async with self.db.session() as db:
            await self._owned(db, session_id, user)
            ids = [m.id for m in await repos.list_messages(db, session_id)]
            if message_id not in ids:
                raise NotFound(f"no message {message_id!r} in session {session_id!r}")
            doomed = ids[ids.index(message_id) :]
            await repos.delete_messages(db, doomed)
            await repos.touch_session(db, session_id)
            return doomed

    async def delete_session(self, session_id: str, *, user: str = "default") -> None:
        async with self.db.session() as db:
            await self._owned(db, session_id, user)
            await repos.delete_session(db, session_id)

    # --- replies -------------------------------------------------------------------

    async def prepare(
        self,
        text: str,
        *,
        session_id: str | None = None,
        create_missing: bool = False,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop: list[str] | None = None,
        json_mode: bool = False,
        conversation: list[dict] | None = None,
        persist: bool = True,
        client_tools: list[dict] | None = None,
        user: str = "default",
        sampling: dict | None = None,
    ) -> Reply:
        """Check a request for an answer without writing anything.

        `text` is the new user message. Natively the conversation is the session's stored
        history; OpenAI- and Ollama-style callers send the whole `conversation` themselves
        (ending with `text`), and with `persist=False` nothing is stored at all.
        `sampling` holds further sampler settings by GenerationOptions name (top_k, …).
        `create_missing` lets a WebSocket connection use the session id it was given
        before that session is stored. Raises InvalidInput, PayloadTooLarge,
        SessionNotFound, ModelNotFound.
        """
        received = time.perf_counter()
        self._check_text(text, "message")
        async with self.db.session() as db:
            session = await repos.get_session(db, session_id) if session_id else None
            if session is not None and session.user_id != user:
                raise SessionNotFound(f"no chat session {session_id!r}")  # taken by someone else: not theirs to see
            if session_id and session is None and not create_missing:
                raise SessionNotFound(f"no chat session {session_id!r}")
            history = await repos.list_messages(db, session.id) if session and conversation is None else []
        model = model or (session.model if session else None) or self._default_model()
        new_session_id = session_id or new_id()
        command = self.plugins.match_command(text) if self.plugins else None
        if command is not None:  # answered by a plugin, whatever the model
            return Reply(
                self,
                session,
                new_session_id,
                text,
                model,
                None,
                model,
                [],
                GenerationOptions(),
                command,
                persist,
                user=user,
                received=received,
            )
        engine, engine_model = await self.engines.check(model)
        if hasattr(engine, "check_queue"):
            engine.check_queue()  # refuse now, before anything is stored
        if client_tools and not await engine.tools_supported(engine_model):
            raise InvalidInput(f"model {model!r} cannot call tools: its chat template has no place for them")
        if self.plugins:
            text_for_model = await self.plugins.before_message(text, self.context(new_session_id, model, user))
        else:
            text_for_model = text
        options = GenerationOptions(
            temperature=temperature,
            max_tokens=self._token_cap(max_tokens),
            top_p=top_p,
            seed=seed,
            stop=stop or [],
            json_mode=json_mode,
            **(sampling or {}),
        )
        recalled = await self._recall(text, user)
        memory_block = render_for_prompt(recalled)
        if conversation is not None:
            messages = [*conversation[:-1], {**conversation[-1], "content": text_for_model}]
            if memory_block:
                messages.insert(0, {"role": "system", "content": memory_block})
        else:
            system = "\n\n".join(p for p in (session.system_prompt if session else None, memory_block) if p) or None
            messages = build_messages(system, history, text_for_model)
        context = await engine.context_length(engine_model)
        if context:
            budget = max(context - (options.max_tokens or 0), context // 2)

            async def count(candidate: list[dict]) -> int:
                return await engine.count_prompt_tokens(engine_model, candidate)

            messages = await fit_to_context(messages, count=count, budget=budget)
        return Reply(
            service=self,
            session=session,
            session_id=new_session_id,
            text=text,
            model=model,
            engine=engine,
            engine_model=engine_model,
            messages=messages,
            options=options,
            persist=persist,
            client_tools=client_tools,
            user=user,
            memory_ids=[m.id for m in recalled],
            received=received,
        )

    async def prepare_completion(
        self, model: str, prompt: str, *, max_tokens: int | None = None, **options: Any
    ) -> tuple[CompletionEngine, str, GenerationOptions]:
        """Check a plain completion (a prompt with no chat template: `/v1/completions`,
        Ollama's `raw` generate) as `prepare` checks a chat message: the same length limit,
        token cap and queue bound. Nothing is stored. Raises InvalidInput, PayloadTooLarge,
        ModelNotFound, TooManyRequests."""
        self._check_text(prompt, "prompt")
        engine, engine_model = await self.engines.check(model)
        if not isinstance(engine, CompletionEngine):
            raise InvalidInput(f"model {model!r} offers chat only; use the chat API")
        if hasattr(engine, "check_queue"):
            engine.check_queue()
        return engine, engine_model, GenerationOptions(max_tokens=self._token_cap(max_tokens), **options)

    def _check_text(self, text: str, what: str) -> None:
        if not text or not text.strip():
            raise InvalidInput(f"{what} must not be empty")
        if len(text) > self.settings.max_message_chars:
            raise PayloadTooLarge(f"{what} is {len(text)} characters; the limit is {self.settings.max_message_chars}")

    def _token_cap(self, max_tokens: int | None) -> int:
        """What the caller asked for (else the default), never above JARVIS_MAX_TOKENS_LIMIT."""
        return min(max_tokens or self.settings.default_max_tokens, self.settings.max_tokens_limit or 1 << 30)

    async def _recall(self, text: str, user: str) -> list:
        """The user's memories relevant to a message (none when memory is off or fails)."""
        if self.memory is None:
            return []
        try:
            return [memory for memory, _score in await self.memory.relevant(text, user=user)]
        except Exception:  # memory helps the answer; it must never stop it
            log.exception("memory recall failed")
            return []

    async def _remember(self, reply: Reply, user: ChatMessage) -> None:
        """Count the recalled memories as used; keep "remember that …" statements."""
        if self.memory is None:
            return
        try:
            await self.memory.mark_used(reply.memory_ids, user=reply.user)
            if reply.command is None:
                await self.memory.capture(reply.text, user=reply.user, session_id=reply.session_id, message_id=user.id)
        except Exception:
            log.exception("memory capture failed")

    def context(self, session_id: str | None, model: str | None, user: str = "default") -> Context:
        memory = self.memory.for_user(user) if self.memory is not None else None
        return Context(session_id=session_id, model=model, user=user, memory=memory, services=self.services)

    async def _chunks(self, reply: Reply) -> AsyncGenerator[Chunk, None]:
        """The answer: from a plugin command, or streamed from the engine."""
        if reply.command is not None:
            assert self.plugins is not None  # commands come from plugins
            text = await self.plugins.run_command(
                reply.command, self.context(reply.session_id, reply.model, reply.user)
            )
            yield Chunk(text=text)
            yield Chunk(finish_reason="command", usage=Usage(0, 0))
            return
        assert reply.engine is not None  # every reply but a command's has one
        if reply.client_tools:  # the caller runs its tools: one round, calls handed back
            async with aclosing(
                reply.engine.stream(reply.engine_model, reply.messages, reply.options, reply.client_tools)
            ) as chunks:
                async for chunk in chunks:
                    yield chunk
            return
        tools = {}
        if self.plugins and await reply.engine.tools_supported(reply.engine_model):
            every = {name: tool for name, (_record, tool) in self.plugins.tools().items()}
            local = reply.engine is self.engines.local
            tools = wanted_tools(reply.text, every, policy=self.settings.chat_tools, local=local)
        specs = [
            {
                "type": "function",
                "function": {"name": name, "description": tool.description, "parameters": tool.parameters},
            }
            for name, tool in tools.items()
        ]
        called: set[str] = set()  # tools run for this answer
        results: list[tuple[dict, str]] = []  # the last round's (call, result)
        messages = list(reply.messages)
        prompt_tokens = completion_tokens = cached_tokens = 0
        words_only = False  # set when the model reached for a tool it was not offered
        for round_number in range(MAX_TOOL_ROUNDS + 2):
            # the last round must answer in words
            offered = specs if specs and round_number < MAX_TOOL_ROUNDS and not words_only else None
            final: Chunk | None = None
            parts: list[str] = []
            async with aclosing(reply.engine.stream(reply.engine_model, messages, reply.options, offered)) as chunks:
                async for chunk in chunks:
                    if chunk.finish_reason:
                        final = chunk  # its text, if any, is decided on below
                    elif chunk.queued:
                        yield chunk
                    elif chunk.text:
                        parts.append(chunk.text)
                        yield Chunk(text=chunk.text)
            if final is None:
                return
            if final.usage:
                prompt_tokens += final.usage.prompt_tokens or 0
                completion_tokens += final.usage.completion_tokens or 0
                cached_tokens += final.usage.cached_tokens or 0
            usage = Usage(prompt_tokens, completion_tokens, cached_tokens) if final.usage else None
            if final.refused_calls and not final.tool_calls and not parts and not words_only:
                # Only a call of a tool that does not exist (a small model inventing one): ask
                # again without tools rather than show the user that call's JSON.
                log.info(
                    "the model called %s, which was not offered; asking again without tools",
                    ", ".join(final.refused_calls),
                )
                words_only = True
                continue
            if final.text:
                parts.append(final.text)
                yield Chunk(text=final.text)
            if not final.tool_calls:
                yield Chunk(finish_reason=final.finish_reason, usage=usage)
                return
            if called and all(call["name"] in called for call in final.tool_calls):
                # A small model given a tool's result often calls the same tool again (with
                # the result as its argument) instead of answering: the results are the answer.
                log.info(
                    "the model called %s again instead of answering; answering with the results",
                    ", ".join(call["name"] for call in final.tool_calls),
                )
                yield Chunk(text=_results_text(results))
                yield Chunk(finish_reason="stop", usage=usage)
                return
            results = []
            messages.append(
                {
                    "role": "assistant",
                    "content": "".join(parts),
                    "tool_calls": [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
                        }
                        for c in final.tool_calls
                    ],
                }
            )
            context = self.context(reply.session_id, reply.model, reply.user)
            for call in final.tool_calls:
                if (
                    call["name"] not in tools or self.plugins is None
                ):  # engines parse only offered calls; never run another
                    log.warning("the model called %r, which was not offered; not run", call["name"])
                    result = f"error: there is no tool named {call['name']!r}"
                else:
                    result = await self.plugins.call_tool(call["name"], call["arguments"], context)
                log.info("tool %s(%s) returned %d characters", call["name"], call["arguments"], len(result))
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
                called.add(call["name"])
                results.append((call, result))

    def _default_model(self) -> str:
        """The configured default when it can be served, else whatever model is loaded."""
        configured = self.settings.default_model
        try:
            self.engines.route(configured)
            return configured
        except JarvisError:
            loaded = self.engines.local.loaded
            return loaded.name if loaded else configured

    async def _start(self, reply: Reply) -> tuple[ChatMessage, ChatMessage]:
        """The user message and the assistant's (still empty) answer, stored unless `persist` is off."""
        label = f"/{reply.command.command.name}" if reply.command else reply.model
        if not reply.persist:
            now = utcnow()
            common = {"session_id": reply.session_id, "created_at": now, "updated_at": now}
            user = ChatMessage(id=new_id(), role="user", content=reply.text, status="complete", **common)
            return user, ChatMessage(
                id=new_id(), role="assistant", content="", status="streaming", model=label, **common
            )
        async with self.db.session() as db:
            if reply.session is None:
                await repos.create_session(
                    db, session_id=reply.session_id, user_id=reply.user, title=_title(reply.text), model=reply.model
                )
            elif reply.session.title == "New chat":
                reply.session.title = _title(reply.text)
                await db.merge(reply.session)
            user = await repos.add_message(db, session_id=reply.session_id, role="user", content=reply.text)
            answer = await repos.add_message(
                db,
                session_id=reply.session_id,
                role="assistant",
                content="",
                status="streaming",
                model=label,
                memory_ids=encode_ids(reply.memory_ids),
                replica_id=self.replica_id,
            )
            await repos.touch_session(db, reply.session_id)
        return user, answer

    async def _run(self, reply: Reply) -> AsyncGenerator[Started | Queued | Token | Finished | Failed, None]:
        user, answer = await self._start(reply)
        parts: list[str] = []
        first_token: float | None = None
        last_flush = time.perf_counter()
        flushing: asyncio.Task | None = None  # the partial answer being written, off the token path
        usage: Usage | None = None
        finish_reason: str | None = None
        tool_calls: list[dict] | None = None
        final: dict[str, Any] = {"status": "complete"}
        try:  # from here on the stored answer gets a final status, however the stream ends
            if reply.persist:
                await self._remember(reply, user)
            yield Started(reply.session_id, user.id, answer.id, reply.model)
            async with aclosing(self._chunks(reply)) as chunks:
                async for chunk in chunks:
                    if chunk.queued:
                        yield Queued(chunk.queued)
                    if chunk.text:
                        if first_token is None:
                            first_token = time.perf_counter()
                        parts.append(chunk.text)
                        yield Token(chunk.text)
                    if chunk.finish_reason:
                        finish_reason, usage, tool_calls = chunk.finish_reason, chunk.usage, chunk.tool_calls
                    now = time.perf_counter()
                    if reply.persist and now - last_flush >= FLUSH_SECONDS and (flushing is None or flushing.done()):
                        last_flush = now
                        flushing = self._in_background(self._flush(answer.id, "".join(parts)))
        except (GeneratorExit, asyncio.CancelledError):
            final = {"status": reply.stop_status}
            raise
        except JarvisError as exc:
            final = {"status": "error", "error": exc.message, "code": exc.code, "http_status": exc.status_code}
        except Exception as exc:  # an engine bug must end this answer, not the server
            log.exception("generation failed")
            final = {"status": "error", "error": f"generation failed: {type(exc).__name__}", "code": "engine_error"}
        finally:
            ended = time.perf_counter()
            fields = {
                "content": "".join(parts),
                "status": final["status"],
                "error": final.get("error"),
                "finish_reason": finish_reason,
                "prompt_tokens": usage.prompt_tokens if usage else None,
                "completion_tokens": usage.completion_tokens if usage else len(parts),
                # from when the request was taken up: what the client waited, stored rows included
                "ttft_ms": round((first_token - reply.received) * 1000, 2) if first_token else None,
                "duration_ms": round((ended - reply.received) * 1000, 2),
                "updated_at": utcnow(),
            }
            stored = await self._finish(answer, fields, persist=reply.persist, after=flushing)
            if self.on_answer is not None and reply.engine is not None:
                self.on_answer(stored, reply.engine.name)
        if final["status"] == "complete":
            if self.plugins and reply.command is None:
                self._in_background(
                    self.plugins.after_answer(
                        reply.text, stored.content, self.context(reply.session_id, reply.model, reply.user)
                    )
                )
            yield Finished(stored, usage, tool_calls)
        else:
            yield Failed(
                stored,
                final.get("code", final["status"]),
                final.get("error") or final["status"],
                final.get("http_status", 502),
            )

    async def _flush(self, message_id: str, content: str) -> None:
        async with self.db.session() as db:
            await repos.update_message(db, message_id, content=content)

    async def _finish(
        self, answer: ChatMessage, fields: dict, *, persist: bool = True, after: asyncio.Task | None = None
    ) -> ChatMessage:
        """Store the final state even if the task running the reply is being cancelled, after
        the partial write still in flight (`after`), which must not land last."""

        async def write() -> None:
            if after is not None:
                await asyncio.gather(after, return_exceptions=True)
            async with self.db.session() as db:
                await repos.update_message(db, answer.id, **fields)
                await repos.touch_session(db, answer.session_id)

        if persist:
            await asyncio.shield(self._in_background(write()))
        for key, value in fields.items():
            setattr(answer, key, value)
        return answer

    def _in_background(self, work: Awaitable[Any]) -> asyncio.Task:
        """Run `work` to its end even if the task that started it is cancelled."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def drain(self) -> None:
        """Wait for final writes still in flight (at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


def _results_text(results: list[tuple[dict, str]]) -> str:
    """Tool results as an answer, each with what it was asked (`7 - 8 → -1`), so a wrong
    question the model asked shows."""
    lines = []
    for call, result in results:
        asked = ", ".join(str(value) for value in call["arguments"].values())
        lines.append(f"{asked} → {result}" if asked else f"{call['name']}: {result}")
    return "\n".join(lines)


def _title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


async def run_to_end(reply: Reply) -> tuple[Started, Finished | Failed]:
    """Run a reply without streaming; returns its start and its outcome."""
    started: Started | None = None
    async with aclosing(reply.events()) as events:
        async for event in events:
            if isinstance(event, Started):
                started = event
            elif isinstance(event, Finished | Failed):
                assert started is not None
                return started, event
    raise RuntimeError("a reply ended without an outcome")
