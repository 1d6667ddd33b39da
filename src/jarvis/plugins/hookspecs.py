"""The hooks a plugin may implement. Built-ins implement them the same way.

A plugin is a module or object with `@hookimpl` functions, registered through the
`jarvis.plugins` entry-point group. Optional attributes describe it: `PLUGIN_NAME`,
`PLUGIN_DESCRIPTION`, `PLUGIN_VERSION` (defaults come from the package metadata).
"""

from __future__ import annotations

import pluggy

from jarvis.plugins.types import Command, Context, Tool

PROJECT = "jarvis"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def jarvis_commands() -> list[Command]:
    """Chat commands this plugin adds (`/time`, `/calc`, …)."""
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def jarvis_tools() -> list[Tool]:
    """Tools a model that supports tool calling may call."""
    raise NotImplementedError


@hookspec
def jarvis_before_message(message: str, context: Context) -> str | None:
    """Called before a user message reaches the model; return a new text to replace it, or None."""


@hookspec
def jarvis_after_answer(message: str, answer: str, context: Context) -> None:
    """Called after the model answered (complete answers only)."""
