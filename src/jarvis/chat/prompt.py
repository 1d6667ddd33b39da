"""Assemble the messages sent to a model: system prompt, earlier turns, the new message,
trimmed from the oldest turn until they fit the model's context window."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from jarvis.errors import InvalidInput
from jarvis.storage.tables import ChatMessage

Counter = Callable[[list[dict]], Awaitable[int]]

# Every token of a prompt covers at least one byte of its text, and a chat template adds a
# few tokens around each message (Gemma: `<start_of_turn>user\n` … `<end_of_turn>\n`) and at
# the start. A prompt that fits by these bounds fits without being tokenized: counting costs
# a template render and a tokenization before the first token, for the common short prompt.
TEMPLATE_TOKENS_PER_MESSAGE = 16
TEMPLATE_TOKENS_PER_PROMPT = 64


def build_messages(system_prompt: str | None, history: Sequence[ChatMessage], user_text: str) -> list[dict]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for row in history:
        if row.role in ("user", "assistant") and row.content:
            messages.append({"role": row.role, "content": row.content})
    messages.append({"role": "user", "content": user_text})
    return messages


async def fit_to_context(messages: list[dict], *, count: Counter, budget: int) -> list[dict]:
    """Drop the oldest turns (never the system prompt or the new message) until the prompt
    takes at most `budget` tokens. Raises InvalidInput if even the new message does not fit."""
    head = messages[:1] if messages and messages[0]["role"] == "system" else []
    turns = messages[len(head) :]
    if surely_fits(messages, budget) or await count(messages) <= budget:
        return messages
    # The prompt shrinks as the start index grows: find the smallest start that fits.
    low, high = 1, len(turns) - 1
    if await count(head + turns[high:]) > budget:
        raise InvalidInput(f"the message is too long for the model's context window ({budget} tokens)")
    while low < high:
        middle = (low + high) // 2
        if await count(head + turns[middle:]) <= budget:
            high = middle
        else:
            low = middle + 1
    trimmed = turns[high:]
    while trimmed and trimmed[0]["role"] == "assistant":  # a conversation starts with the user
        trimmed = trimmed[1:]
    return head + trimmed


def surely_fits(messages: list[dict], budget: int) -> bool:
    """Whether plain-text messages fit `budget` tokens by the byte bound above (False when a
    message carries anything but text, or when only counting can tell)."""
    total = TEMPLATE_TOKENS_PER_PROMPT
    for message in messages:
        content = message.get("content") or ""
        if not isinstance(content, str) or set(message) - {"role", "content"}:
            return False
        total += len(content.encode()) + TEMPLATE_TOKENS_PER_MESSAGE
        if total > budget:
            return False
    return True
