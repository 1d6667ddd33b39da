"""Date and time: `/time`, `/date`, and a `current_time` tool."""

from __future__ import annotations

from datetime import datetime

from jarvis.plugins.hookspecs import hookimpl
from jarvis.plugins.types import Command, Context, Tool

PLUGIN_NAME = "Date and time"
PLUGIN_DESCRIPTION = "The current date and time (/time, /date)."


def _now() -> datetime:
    return datetime.now().astimezone()


def time_command(_args: str, _context: Context) -> str:
    now = _now()
    return f"It is {now:%H:%M:%S} ({now:%Z}, UTC{now:%z}) on {now:%A, %d %B %Y}."


def date_command(_args: str, _context: Context) -> str:
    now = _now()
    return f"Today is {now:%A, %d %B %Y} (ISO {now.date().isoformat()}, week {now.isocalendar().week})."


def time_tool(_arguments: dict, _context: Context) -> str:
    return _now().isoformat(timespec="seconds")


@hookimpl
def jarvis_commands() -> list[Command]:
    return [
        Command("time", "the current time", time_command),
        Command("date", "today's date", date_command),
    ]


@hookimpl
def jarvis_tools() -> list[Tool]:
    keywords = ("time", "date", "today", "clock", "weekday", "uhr", "uhrzeit", "datum", "heute", "wochentag", "spät")
    return [
        Tool(
            "current_time",
            "The current local date and time in ISO 8601.",
            {"type": "object", "properties": {}},
            time_tool,
            keywords,
        )
    ]
