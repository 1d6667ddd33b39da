"""`/remember …`, `/recall …`, `/forget ID`: the long-term memory from the chat."""

from __future__ import annotations

from jarvis.plugins.hookspecs import hookimpl
from jarvis.plugins.types import Command, Context

PLUGIN_NAME = "Memory commands"
PLUGIN_DESCRIPTION = "Keep, find and forget memories from the chat (/remember, /recall, /forget)."


def _memory(context: Context):
    if context.memory is None:
        raise RuntimeError("the memory is not available")
    return context.memory


async def remember(args: str, context: Context) -> str:
    if not args.strip():
        return "Usage: /remember TEXT"
    memory = await _memory(context).add(args.strip(), kind="fact", source="command", session_id=context.session_id)
    return f"Remembered (#{memory.id}): {memory.content}"


async def recall(args: str, context: Context) -> str:
    if not args.strip():
        return "Usage: /recall WORDS"
    found = await _memory(context).search(args.strip(), limit=5)
    if not found:
        return f"Nothing remembered about {args.strip()!r}."
    return "\n".join(f"#{memory.id} [{memory.kind}] {memory.content}" for memory, _score in found)


async def forget(args: str, context: Context) -> str:
    text = args.strip().lstrip("#")
    if not text.isdigit():
        return "Usage: /forget ID (the number /recall shows)"
    await _memory(context).delete(int(text))
    return f"Forgot #{text}."


@hookimpl
def jarvis_commands() -> list[Command]:
    return [
        Command("remember", "keep a fact in long-term memory", remember, usage="TEXT"),
        Command("recall", "search the long-term memory", recall, usage="WORDS"),
        Command("forget", "delete a memory", forget, usage="ID"),
    ]
