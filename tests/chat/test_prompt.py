"""Prompt assembly: history in order, trimmed from the oldest turn to fit the context window."""

from __future__ import annotations

import pytest

from jarvis.chat.prompt import build_messages, fit_to_context, surely_fits
from jarvis.errors import InvalidInput


class Row:
    def __init__(self, role: str, content: str) -> None:
        self.role, self.content = role, content


async def words(messages: list[dict]) -> int:
    return sum(len(m["content"].split()) + 1 for m in messages)


def test_build_messages_keeps_order_and_skips_empty_answers():
    history = [Row("user", "a"), Row("assistant", ""), Row("user", "b"), Row("assistant", "c")]
    messages = build_messages("sys", history, "d")
    assert messages == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "c"},
        {"role": "user", "content": "d"},
    ]


async def test_fits_untouched_when_small():
    messages = build_messages(None, [Row("user", "one"), Row("assistant", "two")], "three")
    assert await fit_to_context(messages, count=words, budget=100) == messages


async def test_drops_oldest_turns_and_keeps_system_prompt_and_new_message():
    history = []
    for index in range(10):
        history += [Row("user", f"question {index} " * 5), Row("assistant", f"answer {index} " * 5)]
    messages = build_messages("be kind", history, "last question")
    fitted = await fit_to_context(messages, count=words, budget=60)
    assert fitted[0] == {"role": "system", "content": "be kind"}
    assert fitted[-1] == {"role": "user", "content": "last question"}
    assert fitted[1]["role"] == "user"  # a trimmed conversation still starts with the user
    assert await words(fitted) <= 60
    assert fitted[1:-1] == messages[len(messages) - len(fitted) + 1 : -1]  # the newest turns survive
    assert len(fitted) > 2


async def test_new_message_alone_too_long():
    messages = build_messages(None, [Row("user", "a")], "word " * 200)
    with pytest.raises(InvalidInput):
        await fit_to_context(messages, count=words, budget=50)


async def test_a_prompt_that_surely_fits_is_not_counted():
    calls = []

    async def counted(messages):
        calls.append(messages)
        return await words(messages)

    short = build_messages("sys", [Row("user", "hello")], "how are you?")
    assert await fit_to_context(short, count=counted, budget=4096) == short and calls == []
    assert surely_fits(short, 4096) and not surely_fits(short, 100)
    # anything but plain text (tool calls, image parts) is counted
    assert not surely_fits([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], 4096)
    assert not surely_fits([{"role": "assistant", "content": "", "tool_calls": [{"id": "1"}]}], 4096)
    await fit_to_context(short, count=counted, budget=120)
    assert calls == [short]
