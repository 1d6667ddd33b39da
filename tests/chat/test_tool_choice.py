"""Which plugin tools a chat offers: a small local model only those the message suggests."""

from __future__ import annotations

import pytest

from jarvis.chat.tool_choice import wanted_tools
from jarvis.plugins.types import Tool


def tool(name: str, *keywords: str) -> Tool:
    return Tool(name, "", {"type": "object", "properties": {}}, lambda arguments, context: "", keywords)


TOOLS = {
    t.name: t for t in (tool("calculator", "calculate"), tool("current_time", "time", "uhrzeit"), tool("get_weather"))
}


@pytest.mark.parametrize(
    ("text", "offered"),
    [
        ("What is 1234 * 5678?", ["calculator"]),
        ("Wie viel ist 17 mal 23?", ["calculator"]),
        ("What is 7 times 8?", ["calculator"]),
        ("Wie spät ist es? Sag mir die Uhrzeit.", ["current_time"]),
        ("How is the weather in Paris?", ["get_weather"]),
        ("What is the capital of France?", []),
        ("Hallo Jarvis! Wie geht es dir?", []),
        ("In 2024 I had 3 cats.", []),
    ],
)
def test_the_small_local_model_gets_the_tools_a_message_suggests(text, offered):
    assert list(wanted_tools(text, TOOLS, policy="auto", local=True)) == offered


def test_remote_engines_and_always_get_every_tool_never_gets_none():
    assert list(wanted_tools("Hallo", TOOLS, policy="auto", local=False)) == list(TOOLS)
    assert list(wanted_tools("Hallo", TOOLS, policy="always", local=True)) == list(TOOLS)
    assert wanted_tools("What is 2+2?", TOOLS, policy="never", local=False) == {}
