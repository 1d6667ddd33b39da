"""Tool calls in a local model's output.

Instruction-tuned models write a tool call as text in their own markup: Qwen and Hermes
`<tool_call>{"name": …, "arguments": …}</tool_call>`, Mistral `[TOOL_CALLS][{…}]`, Llama 3
`<|python_tag|>{…}` or a bare JSON object. `ToolCallFilter` sits in the token stream: text
that cannot be a call streams on at once; from the point where a call may begin the text
is held back, and at the end it is either parsed into calls or, when it holds none, handed
out as the answer after all. Only tools that were offered ever come out as calls.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Markup that opens a tool call in the output of the model families we know.
MARKERS = ("<tool_call>", "[TOOL_CALLS]", "<|python_tag|>")
_TAGGED = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)
_DECODER = json.JSONDecoder()


@dataclass
class ToolCallFilter:
    """Splits a stream of text into what the client sees now and a held-back tail that may be
    a tool call. Feed text with `feed`, which returns what may be released; at the end,
    `finish` returns (text still to release, parsed calls)."""

    offered: set[str]
    held: str = ""
    capturing: bool = False  # a call has begun: hold everything to the end
    released_any: bool = False  # some text went out already (a bare JSON call must come first)

    def feed(self, text: str) -> str:
        if self.capturing:
            self.held += text
            return ""
        self.held += text
        start = self._call_start(self.held)
        if start is not None:
            out, self.held = self.held[:start], self.held[start:]
            self.capturing = True
            return self._release(out)
        keep = self._undecided_tail(self.held)
        out, self.held = self.held[: len(self.held) - keep], self.held[len(self.held) - keep :]
        return self._release(out)

    def finish(self) -> tuple[str, list[dict], list[str]]:
        """(held-back text that is the answer after all, calls of offered tools, names of calls
        refused because their tool was not offered)."""
        held, self.held = self.held, ""
        if not self.capturing:
            return held, [], []
        calls, refused = parse_tool_calls(held, self.offered)
        if refused:
            log.warning("the model asked for tools that were not offered, not run: %s", ", ".join(refused))
        if calls:
            return "", calls, refused
        return held, [], refused  # no call after all: it was the answer (a JSON reply, say)

    def _release(self, text: str) -> str:
        if text.strip():
            self.released_any = True
        return text

    def _call_start(self, text: str) -> int | None:
        """Where a tool call begins in `text`, if one has."""
        found = [index for marker in MARKERS if (index := text.find(marker)) >= 0]
        if found:
            return min(found)
        if not self.released_any and _json_first(text.lstrip()):  # a bare JSON call answers at once
            return 0
        return None

    def _undecided_tail(self, text: str) -> int:
        """How many characters at the end could still become a marker (or, before any text
        went out, the whitespace a bare JSON call may follow)."""
        if not self.released_any and _could_open_json(text.lstrip()):
            return len(text)
        for size in range(min(len(text), max(map(len, MARKERS)) - 1), 0, -1):
            tail = text[-size:]
            if any(marker.startswith(tail) for marker in MARKERS):
                return size
        return 0


def _json_first(text: str) -> bool:
    """Whether `text` opens with JSON, bare or in a Markdown code fence (```json)."""
    if text.startswith("```"):
        _fence, newline, rest = text.partition("\n")
        text = rest.lstrip() if newline else ""
    return text[:1] in ("{", "[")


def _could_open_json(text: str) -> bool:
    """Whether more text may still show `text` to open with JSON (nothing yet, or a fence line)."""
    return (
        not text
        or "```".startswith(text[:3])
        and (len(text) < 3 or "\n" not in text or not text.partition("\n")[2].strip())
    )


def parse_tool_calls(text: str, offered: set[str]) -> tuple[list[dict], list[str]]:
    """Calls of offered tools found in `text` as [{"id", "name", "arguments": dict}], and the
    names of calls refused because their tool was not offered."""
    objects: list = []
    tagged = _TAGGED.findall(text)
    if tagged:
        for body in tagged:
            objects.extend(_json_values(body))
    else:
        body = text
        for marker in MARKERS[1:]:
            body = body.replace(marker, " ")
        objects.extend(_json_values(body))
    calls, refused = [], []
    for item in _flatten(objects):
        call = _as_call(item)
        if call is None:
            continue
        if call["name"] not in offered:
            refused.append(call["name"])
            continue
        calls.append(call)
    return calls, refused


def _json_values(text: str) -> list:
    """Every JSON value in `text`, in order (separators such as `;` or newlines between them)."""
    values, index = [], 0
    while index < len(text):
        start = min((i for i in (text.find("{", index), text.find("[", index)) if i >= 0), default=-1)
        if start < 0:
            break
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            index = start + 1
            continue
        values.append(value)
        index = end
    return values


def _flatten(values: list) -> list:
    out = []
    for value in values:
        out.extend(value if isinstance(value, list) else [value])
    return out


def _as_call(item: object) -> dict | None:
    if not isinstance(item, dict):
        return None
    function: dict = item["function"] if isinstance(item.get("function"), dict) else item
    name = function.get("name")
    if not isinstance(name, str) or not name:
        return None
    arguments = function.get("arguments", function.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return {"id": f"call_{uuid.uuid4().hex[:24]}", "name": name, "arguments": arguments}
