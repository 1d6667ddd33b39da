"""Which plugin tools an answer is offered.

A large model (behind Ollama or an OpenAI-compatible server) is offered every tool and
decides itself. A small local model is not good at that: offered a calculator, the bundled
0.5B model answered "What is the capital of France?" with a calculator call, and the tool
schemas in every prompt made each answer several times slower (bench/answers.py: 8/20
right with every tool offered against 13/20 without). So with `JARVIS_CHAT_TOOLS=auto`
(the default) the embedded engine is offered a tool only when the message suggests it:
arithmetic in it, or one of the tool's keywords or name words. `always` offers every tool
to every model, `never` none.
"""

from __future__ import annotations

import re

from jarvis.plugins.types import Tool

_WORDS = re.compile(r"\w+", re.UNICODE)
_ARITHMETIC = re.compile(
    r"\d\s*(?:[-+*/×÷^%]|\*\*|times|plus|minus|divided by|mal|geteilt durch|durch)\s*\(?\s*\d", re.IGNORECASE
)


def wanted_tools(text: str, tools: dict[str, Tool], *, policy: str, local: bool) -> dict[str, Tool]:
    """The tools of `tools` (name -> Tool) to offer for the message `text`."""
    if policy == "never":
        return {}
    if policy == "always" or not local:
        return tools
    words = {word.lower() for word in _WORDS.findall(text)}
    return {name: tool for name, tool in tools.items() if _suggested(text, words, name, tool)}


def _suggested(text: str, words: set[str], name: str, tool: Tool) -> bool:
    if name == "calculator" and _ARITHMETIC.search(text):
        return True
    hints = {word for word in name.lower().split("_") if len(word) > 2} | {k.lower() for k in tool.keywords}
    return bool(hints & words)
