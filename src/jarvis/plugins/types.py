"""What plugins hand to JARVIS: commands, tools, and the context they run in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Context:
    """What a command, tool or hook may use. `user` is who asks; `memory` is the long-term
    memory as that user sees it (memory.service.UserMemories; None when absent)."""

    session_id: str | None = None
    model: str | None = None
    user: str = "default"
    memory: Any = None
    services: Any = None  # the whole service graph, for plugins that need more (read-only use)
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Command:
    """`/name args` in a chat answers with `handler(args, context)` instead of the model."""

    name: str
    description: str
    handler: Callable[[str, Context], str | Awaitable[str]]
    usage: str = ""


@dataclass(frozen=True)
class Tool:
    """A function a model may call; `parameters` is a JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict
    handler: Callable[[dict, Context], Any]
    # words (any language) that suggest a message needs this tool; small local models are
    # offered a tool only then (see chat/tool_choice.py). Its name's words count too.
    keywords: tuple[str, ...] = ()
