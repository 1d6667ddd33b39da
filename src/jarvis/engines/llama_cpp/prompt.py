"""Messages to prompt text for a local model.

A GGUF with a chat template is rendered by that template (Jinja in llama-cpp-python's
sandboxed environment: a template cannot reach Python internals), tools included when the
template knows them. A model without one is a base model: it has learned to continue text,
not to take turns, so it gets a plain transcript ("User: … / Assistant:") and stop
sequences that end its answer where it would start the next turn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jarvis.engines.base import tool_arguments

TRANSCRIPT_ROLES = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}
# A base model that goes on past its answer writes the next speaker's name.
TRANSCRIPT_STOPS = ["\nUser:", "\nAssistant:", "\nSystem:", "\nTool:", "\n\n\n"]


@dataclass
class Rendered:
    text: str
    stop: list[str] = field(default_factory=list)  # strings that end the answer where they begin


class ChatPrompt:
    """How one model turns messages into a prompt (built once per loaded model)."""

    def __init__(self, template: str | None, *, bos_token: str, eos_token: str) -> None:
        self.template = template
        self._formatter = None
        if template:
            from llama_cpp import llama_chat_format

            self._formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template, eos_token=eos_token, bos_token=bos_token
            )

    @property
    def is_chat(self) -> bool:
        """Whether the model was trained for turns (it has a chat template)."""
        return self._formatter is not None

    @property
    def supports_tools(self) -> bool:
        return self.template is not None and "tools" in self.template

    def render(self, messages: list[dict], tools: list[dict] | None = None) -> Rendered:
        """Raises ValueError when the template refuses the messages (its `raise_exception`)."""
        if self._formatter is None:
            return Rendered(transcript(messages), list(TRANSCRIPT_STOPS))
        kwargs = {"tools": tools} if tools and self.supports_tools else {}
        formatter: Any = (
            self._formatter
        )  # its signature wants llama-cpp-python's TypedDicts; plain dicts are what it reads
        result = formatter(messages=[_for_template(m) for m in messages], **kwargs)
        return Rendered(result.prompt)


def transcript(messages: list[dict]) -> str:
    """A conversation as plain text that ends where the assistant's answer begins."""
    lines = []
    for message in messages:
        role = TRANSCRIPT_ROLES.get(message["role"], message["role"].title())
        content = (message.get("content") or "").strip()
        for call in message.get("tool_calls") or []:
            function = call.get("function", call)
            content += f"\n(calls {function.get('name')} with {json.dumps(tool_arguments(function.get('arguments')))})"
        lines.append(f"{role}: {content.strip()}")
    lines.append("Assistant:")
    return "\n".join(lines)


def _for_template(message: dict) -> dict:
    """A message as chat templates expect it: tool call arguments as objects (OpenAI sends a
    JSON string, which a template's `tojson` would encode a second time)."""
    if not message.get("tool_calls"):
        return message
    calls = []
    for call in message["tool_calls"]:
        function = call.get("function", call)
        calls.append(
            {
                **call,
                "type": "function",
                "function": {"name": function.get("name"), "arguments": tool_arguments(function.get("arguments"))},
            }
        )
    return {**message, "tool_calls": calls}
