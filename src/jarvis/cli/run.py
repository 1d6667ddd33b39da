'''`jarvis run MODEL [PROMPT]`: a terminal chat that streams each answer as it is written.

It talks to the running server's native API when one answers (SSE `POST /api/chat/messages`),
else it starts the same service graph the server runs, in-process. Either way the
conversation is a stored session and plugin commands (`/calc 6*7`) work as in every chat API.

Interactive when stdin is a terminal (or with `--interactive`): a line ending in `\\`
continues on the next line, `"""` opens a block that a line ending in `"""` closes (as in
Ollama); Ctrl-C stops the answer being written; `/bye`, Ctrl-D or Ctrl-C twice at an empty
prompt leave. `jarvis run MODEL "question"` answers once; text piped on stdin is answered once
(after PROMPT, when both are given).
'''

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Annotated, Protocol
from urllib.parse import quote

import typer

from jarvis.cli.common import error_message, errors, fail, server_answers, stream_client
from jarvis.errors import JarvisError

if TYPE_CHECKING:  # imported where used: `jarvis --help` needs none of it (cli/main.py)
    import asyncio

    from jarvis.config import Settings

PROMPT, MORE = ">>> ", "... "
BLOCK = '"""'
LEAVE = ("/bye", "/exit")
HELP = f"""Commands:
  /bye    leave (also Ctrl-D, or Ctrl-C twice at an empty prompt)
  /?      this help
  /set parameter NAME VALUE
          a sampler setting for the answers that follow: temperature, top_p, seed, num_predict
  /help   the plugins' chat commands (/calc 6*7, /time…), which work here as in every chat API
Multi-line input: end a line with \\ to go on with the next one, or wrap text in {BLOCK} … {BLOCK}.
Ctrl-C stops the answer being written; the chat goes on."""


# `/set parameter` names (Ollama's) → the chat API's field.
PARAMETERS = {"temperature": "temperature", "top_p": "top_p", "seed": "seed", "num_predict": "max_tokens"}


class AnswerFailed(Exception):
    """The server or the engine could not answer; the message says why."""


class Chat(Protocol):
    session_id: str | None
    parameters: dict[str, float | int]  # chat API field → value, sent with every message

    async def check(self) -> None: ...

    def answer(self, text: str) -> AsyncGenerator[str, None]: ...

    async def close(self) -> None: ...


class RemoteChat:
    """The conversation as a session of the running server, through its native SSE API."""

    def __init__(self, settings: Settings, model: str, session_id: str | None) -> None:
        self.model = model
        self.session_id = session_id
        self.parameters: dict[str, float | int] = {}
        self.http = stream_client(settings)

    async def check(self) -> None:
        """Raises AnswerFailed for a model the server cannot serve or a session it does not have."""
        response = await self.http.get(f"/v1/models/{quote(self.model, safe='/:')}")
        if response.is_error:
            raise AnswerFailed(error_message(response))
        if self.session_id:
            response = await self.http.get(f"/api/chat/sessions/{quote(self.session_id, safe='')}")
            if response.is_error:
                raise AnswerFailed(error_message(response))

    async def answer(self, text: str) -> AsyncGenerator[str, None]:
        if self.session_id is None:  # made now so an answer stopped before its first token keeps it
            response = await self.http.post("/api/chat/sessions", json={"model": self.model})
            if response.is_error:
                raise AnswerFailed(error_message(response))
            self.session_id = response.json()["id"]
        from httpx_sse import aconnect_sse

        body = {"message": text, "model": self.model, "stream": True, "sessionId": self.session_id, **self.parameters}
        async with aconnect_sse(self.http, "POST", "/api/chat/messages", json=body) as source:
            if source.response.is_error:
                await source.response.aread()
                raise AnswerFailed(error_message(source.response))
            async for event in source.aiter_sse():
                data = json.loads(event.data) if event.data else {}
                if event.event == "token":
                    yield data["content"]
                elif event.event == "error":
                    raise AnswerFailed(data.get("error") or "the answer failed")
                elif event.event == "end":
                    return

    async def close(self) -> None:
        await self.http.aclose()


class LocalChat:
    """The conversation on the service graph started in this process (no server running)."""

    def __init__(self, services, model: str, session_id: str | None) -> None:
        from jarvis.storage.tables import new_id

        self.services = services
        self.model = model
        self.session_id = session_id
        self.parameters: dict[str, float | int] = {}
        self._new_id = session_id or new_id()  # stored with the first message

    @classmethod
    async def start(cls, settings: Settings, model: str, session_id: str | None) -> LocalChat:
        from jarvis.services import Services

        # Load the model asked for, not the configured default (check() does that).
        services = await Services.start(settings.model_copy(update={"load_on_start": False}))
        return cls(services, model, session_id)

    async def check(self) -> None:
        """Loads the model. Raises JarvisError (ModelNotFound, SessionNotFound…)."""
        engines = self.services.engines
        engine, name = await engines.check(self.model)
        if engine is engines.local:
            await engines.local.load(name)
        if self.session_id:
            await self.services.chat.get_session(self.session_id)

    async def answer(self, text: str) -> AsyncGenerator[str, None]:
        from jarvis.chat.service import Failed, Started, Token

        reply = await self.services.chat.prepare(
            text, session_id=self._new_id, create_missing=True, model=self.model, **self.parameters
        )
        reply.stop_status = "cancelled"  # here an answer only stops early when the user asks
        async with aclosing(reply.events()) as events:
            async for event in events:
                if isinstance(event, Token):
                    yield event.text
                elif isinstance(event, Started):
                    self.session_id = event.session_id
                elif isinstance(event, Failed):
                    raise AnswerFailed(event.error)

    async def close(self) -> None:
        await self.services.close()


def run(
    model: Annotated[str, typer.Argument(help="the model to chat with, e.g. gemma3:270m or ollama/llama3.2")],
    prompt: Annotated[str | None, typer.Argument(help="answer this once and exit")] = None,
    interactive: Annotated[
        bool, typer.Option("--interactive", "-i", help="chat even when stdin is not a terminal")
    ] = False,
    session: Annotated[str | None, typer.Option("--session", help="go on with this stored session")] = None,
) -> None:
    """Chat with a model in the terminal, the answer streamed as it is written.

    Through the running server when one answers (API_HOST, JARVIS_PORT / API_PORT), else standalone.
    """
    import asyncio

    from jarvis.config import Settings

    settings = Settings()
    chatting = interactive or (prompt is None and sys.stdin.isatty())
    if not interactive:
        piped = _piped_stdin()
        if piped is not None:
            piped = piped.strip()
            prompt = f"{prompt}\n\n{piped}" if prompt and piped else prompt or piped
        if prompt is None and not chatting:
            fail("nothing to answer: give a PROMPT, pipe text on stdin, or chat with --interactive")
        if prompt is not None and not prompt.strip():
            fail("nothing to answer: the prompt is empty")
    with asyncio.Runner() as runner:
        chat = _open(runner, settings, model, session)
        try:
            if prompt is not None:
                outcome = _answer(runner, chat, prompt)
                if outcome != "done" and not chatting:
                    raise typer.Exit(130 if outcome == "stopped" else 1)
            if chatting:
                errors.print(f"[dim]{model} · /? for help · /bye to leave[/]", highlight=False)
                _chat(runner, chat)
                if chat.session_id:
                    errors.print(
                        f"[dim]stored as session {chat.session_id} (go on with --session {chat.session_id})[/]",
                        highlight=False,
                        soft_wrap=True,
                    )
        finally:
            try:
                runner.run(chat.close())
            except (Exception, KeyboardInterrupt):  # leaving anyway; nothing is lost by a rough close
                pass


def _piped_stdin() -> str | None:
    """What was piped or redirected into stdin; None for a terminal or nothing (/dev/null)."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):
        return None
    if not (stat.S_ISFIFO(mode) or stat.S_ISREG(mode)):
        return None
    return sys.stdin.read()


def _open(runner: asyncio.Runner, settings: Settings, model: str, session: str | None) -> Chat:
    """The running server's chat, or a standalone one; fails with one line when the model cannot be served."""
    import httpx

    try:
        if server_answers(settings):
            chat: Chat = RemoteChat(settings, model, session)
        else:
            chat = runner.run(LocalChat.start(settings, model, session))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except JarvisError as exc:
        fail(exc.message)
    try:
        runner.run(chat.check())
    except (AnswerFailed, JarvisError, httpx.TransportError) as exc:
        runner.run(chat.close())
        fail(_describe(exc))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    return chat


def _describe(exc: BaseException) -> str:
    import httpx

    if isinstance(exc, JarvisError):
        return exc.message
    if isinstance(exc, httpx.TransportError):
        return f"lost the server: {exc}"
    return str(exc)


def _answer(runner: asyncio.Runner, chat: Chat, text: str) -> str:
    """Stream one answer to stdout; returns "done", "stopped" (Ctrl-C: the stored answer says
    so) or "failed" (the reason is one line on stderr)."""
    import httpx

    async def stream() -> None:
        async with aclosing(chat.answer(text)) as tokens:
            async for token in tokens:
                sys.stdout.write(token)
                sys.stdout.flush()

    try:
        runner.run(stream())
    except KeyboardInterrupt:  # asyncio.Runner turned Ctrl-C into cancelling the answer
        sys.stdout.write("\n")
        errors.print("[dim](stopped)[/]", highlight=False)
        return "stopped"
    except (AnswerFailed, JarvisError, httpx.TransportError) as exc:
        sys.stdout.write("\n")
        errors.print(f"[bold red]error:[/] {_describe(exc)}", highlight=False, soft_wrap=True)
        return "failed"
    finally:
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
    return "done"


def _chat(runner: asyncio.Runner, chat: Chat) -> None:
    """The interactive loop: read a message, stream the answer, until the user leaves."""
    if sys.stdin.isatty():
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
    interrupted = False  # the last thing the user did was Ctrl-C outside an answer
    while True:
        try:
            try:
                text = read_message(input).strip()
            except EOFError:
                sys.stdout.write("\n")
                return
            interrupted = False
            if text in LEAVE:
                return
            if text == "/?":
                print(HELP)
            elif text.startswith("/set "):
                _set(chat, text)
            elif text:
                _answer(runner, chat, text)  # Ctrl-C while it streams stops it there
                sys.stdout.write("\n")
        except KeyboardInterrupt:  # at the prompt, or in between (e.g. just as an answer ended)
            sys.stdout.write("\n")
            if interrupted:
                return
            interrupted = True
            try:
                errors.print("[dim](Ctrl-C again, Ctrl-D or /bye to leave)[/]", highlight=False)
            except KeyboardInterrupt:
                return


def _set(chat: Chat, text: str) -> None:
    """`/set parameter NAME VALUE`, as in Ollama: kept for the answers that follow, checked
    against the range the chat API takes."""
    from pydantic import TypeAdapter, ValidationError

    from jarvis.api.ranges import MaxTokens, Temperature, TopP

    ranges = {"temperature": Temperature, "top_p": TopP, "seed": int, "max_tokens": MaxTokens}
    words = text.split()
    if len(words) != 4 or words[1] != "parameter" or words[2] not in PARAMETERS:
        errors.print(f"usage: /set parameter NAME VALUE, NAME one of {', '.join(PARAMETERS)}", highlight=False)
        return
    field = PARAMETERS[words[2]]
    try:
        chat.parameters[field] = TypeAdapter(ranges[field]).validate_python(words[3])
    except ValidationError as exc:
        errors.print(f"{words[2]}: {exc.errors()[0]['msg']}", highlight=False)
        return
    errors.print(f"[dim]Set parameter '{words[2]}' to '{words[3]}'[/]", highlight=False)


def read_message(read_line: Callable[[str], str]) -> str:
    """One message, perhaps over several lines: `\\` at the end of a line goes on with the
    next; a line starting with \"\"\" opens a block that a line ending with \"\"\" closes.
    Raises EOFError and KeyboardInterrupt as `read_line` does."""
    line = read_line(PROMPT)
    if line.lstrip().startswith(BLOCK):
        first = line.lstrip()[len(BLOCK) :]
        if first.rstrip().endswith(BLOCK):
            return first.rstrip()[: -len(BLOCK)]
        lines = [first] if first else []
        while True:
            line = read_line(MORE)
            if line.rstrip().endswith(BLOCK):
                lines.append(line.rstrip()[: -len(BLOCK)])
                return "\n".join(lines)
            lines.append(line)
    lines = []
    while line.endswith("\\"):
        lines.append(line[:-1])
        line = read_line(MORE)
    lines.append(line)
    return "\n".join(lines)
