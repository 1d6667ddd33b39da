"""Tool calls parsed out of a local model's text: each family's markup, streaming around them,
and never a call of a tool that was not offered."""

from __future__ import annotations

import pytest

from jarvis.engines.llama_cpp.tool_calls import ToolCallFilter, parse_tool_calls

OFFERED = {"calculator", "current_time"}


def run(pieces: list[str], offered=OFFERED) -> tuple[str, str, list[dict]]:
    """(text released while streaming, text released at the end, calls)."""
    tools = ToolCallFilter(set(offered))
    streamed = "".join(tools.feed(piece) for piece in pieces)
    rest, calls, _refused = tools.finish()
    return streamed, rest, calls


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "calculator", "arguments": {"expression": "1234 * 5678"}}\n</tool_call>',
        '[TOOL_CALLS][{"name": "calculator", "arguments": {"expression": "1234 * 5678"}}]',
        '<|python_tag|>{"name": "calculator", "parameters": {"expression": "1234 * 5678"}}',
        '{"name": "calculator", "arguments": "{\\"expression\\": \\"1234 * 5678\\"}"}',
        '  {"function": {"name": "calculator", "arguments": {"expression": "1234 * 5678"}}}',
    ],
)
def test_each_familys_markup_becomes_a_call(text):
    streamed, rest, calls = run([text[i : i + 3] for i in range(0, len(text), 3)])  # token-sized pieces
    assert streamed == rest == ""
    assert [(c["name"], c["arguments"]) for c in calls] == [("calculator", {"expression": "1234 * 5678"})]
    assert calls[0]["id"].startswith("call_")


def test_text_before_a_tagged_call_streams_and_the_call_is_held():
    text = 'Let me compute that.\n<tool_call>{"name": "calculator", "arguments": {"expression": "2+2"}}</tool_call>'
    streamed, rest, calls = run([text[i : i + 4] for i in range(0, len(text), 4)])
    assert streamed == "Let me compute that.\n"
    assert rest == "" and calls[0]["arguments"] == {"expression": "2+2"}


def test_two_calls_in_one_answer():
    text = (
        '<tool_call>{"name": "calculator", "arguments": {"expression": "1+1"}}</tool_call>\n'
        '<tool_call>{"name": "current_time", "arguments": {}}</tool_call>'
    )
    _, _, calls = run([text])
    assert [c["name"] for c in calls] == ["calculator", "current_time"]
    assert calls[0]["id"] != calls[1]["id"]


def test_plain_text_streams_at_once_and_keeps_only_a_possible_marker_back():
    streamed, rest, calls = run(["Paris is the capital", " of France. <tool"])
    assert streamed == "Paris is the capital of France. "
    assert rest == "<tool" and calls == []


def test_json_that_is_no_call_is_the_answer_after_all():
    text = '{"city": "Paris", "country": "France"}'
    streamed, rest, calls = run([text])
    assert streamed == "" and rest == text and calls == []


def test_a_tool_that_was_not_offered_is_never_a_call():
    text = '<tool_call>{"name": "delete_all_files", "arguments": {"path": "/"}}</tool_call>'
    streamed, rest, calls = run([text])
    assert calls == []
    assert rest == text  # shown as the model wrote it, not run
    calls, refused = parse_tool_calls(text, OFFERED)
    assert calls == [] and refused == ["delete_all_files"]


def test_offered_and_unoffered_in_one_answer_keeps_only_the_offered():
    text = (
        '<tool_call>{"name": "shell", "arguments": {"cmd": "rm -rf /"}}</tool_call>'
        '<tool_call>{"name": "calculator", "arguments": {"expression": "3*3"}}</tool_call>'
    )
    _, _, calls = run([text])
    assert [c["name"] for c in calls] == ["calculator"]


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "calculator", "arguments": [1, 2]}</tool_call>',
        '<tool_call>{"name": 5}</tool_call>',
        "<tool_call>not json at all</tool_call>",
        '<tool_call>{"name": "calculator", "arguments": "{broken"}</tool_call>',
    ],
)
def test_malformed_calls_are_not_calls(text):
    _, rest, calls = run([text])
    assert calls == [] and rest == text


def test_a_call_in_a_markdown_code_fence_is_a_call():
    text = '```json\n{\n  "name": "current_time",\n  "arguments": {}\n}\n```'
    streamed, rest, calls = run([text[i : i + 2] for i in range(0, len(text), 2)])
    assert streamed == rest == "" and [c["name"] for c in calls] == ["current_time"]


def test_a_code_fence_with_code_streams():
    text = "```python\ndef f():\n    return 1\n```"
    streamed, rest, calls = run([text[i : i + 2] for i in range(0, len(text), 2)])
    assert streamed + rest == text and calls == []
    assert streamed.startswith("```python\ndef")
