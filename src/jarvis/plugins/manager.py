"""Discover, register, enable and call plugins.

pluggy does discovery bookkeeping and validates hook implementations against the specs.
Hooks are then called one implementation at a time rather than through `pm.hook.x()`:
pluggy stops a whole hook call at the first exception, and a plugin that raises must not
take the chat (or the other plugins) down with it. Its error is logged and kept on the
plugin, where `GET /api/plugins` shows it.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import pluggy
from sqlalchemy import select

from jarvis.errors import Conflict, NotFound
from jarvis.plugins import hookspecs
from jarvis.plugins.builtin import BUILTINS
from jarvis.plugins.types import Command, Context, Tool
from jarvis.storage.db import Database
from jarvis.storage.tables import PluginState, utcnow

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "jarvis.plugins"
_COMMAND = re.compile(r"^/([A-Za-z][A-Za-z0-9_-]{0,31})(?:\s+(.*))?$", re.DOTALL)
_HOOKS = ("jarvis_commands", "jarvis_tools", "jarvis_before_message", "jarvis_after_answer")


@dataclass
class PluginRecord:
    id: str
    name: str
    version: str
    description: str
    source: str  # builtin | package
    plugin: Any = None  # the registered module/object; None when it failed to load
    enabled: bool = True
    last_error: str | None = None
    last_error_at: str | None = None
    capabilities: builtins.list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "source": self.source,
            "capabilities": self.capabilities,
            "enabled": self.enabled,
            "loaded": self.plugin is not None,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }


@dataclass
class CommandCall:
    plugin: PluginRecord
    command: Command
    args: str


class PluginManager:
    def __init__(self, db: Database, *, group: str = ENTRY_POINT_GROUP) -> None:
        self.db = db
        self.group = group
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.on_change: Callable[[PluginRecord], None] | None = None  # set by the service graph to publish events

    async def start(self) -> None:
        """Register the built-ins and every installed package's plugin, then apply saved state."""
        for plugin_id, module in BUILTINS.items():
            self._register(plugin_id, module, source="builtin", version=_own_version())
        for entry in metadata.entry_points(group=self.group):
            self._load_entry_point(entry)
        async with self.db.session() as session:
            for state in (await session.scalars(select(PluginState))).all():
                if state.plugin_id in self.records:
                    self.records[state.plugin_id].enabled = state.enabled

    def _load_entry_point(self, entry: metadata.EntryPoint) -> None:
        version = entry.dist.version if entry.dist else "?"
        if entry.name in self.records:
            log.warning("plugin id %r from %s is taken; skipped", entry.name, entry.value)
            return
        try:
            plugin = entry.load()
        except Exception as exc:  # a broken package must not stop the server
            log.exception("plugin %s failed to import", entry.name)
            record = PluginRecord(entry.name, entry.name, version, "", "package", enabled=False)
            self._note_error(record, f"import failed: {type(exc).__name__}: {exc}")
            self.records[entry.name] = record
            return
        self._register(entry.name, plugin, source="package", version=version)

    def _register(self, plugin_id: str, plugin: Any, *, source: str, version: str) -> None:
        record = PluginRecord(
            id=plugin_id,
            name=getattr(plugin, "PLUGIN_NAME", plugin_id),
            version=str(getattr(plugin, "PLUGIN_VERSION", version)),
            description=getattr(plugin, "PLUGIN_DESCRIPTION", (inspect.getdoc(plugin) or "").split("\n")[0]),
            source=source,
        )
        try:
            self.pm.register(plugin, name=plugin_id)
        except Exception as exc:  # pluggy refuses hooks that do not match the specs
            self._note_error(record, f"registration failed: {exc}")
            record.enabled = False
            self.records[plugin_id] = record
            return
        record.plugin = plugin
        record.capabilities = self._capabilities(plugin_id)
        self.records[plugin_id] = record

    def _capabilities(self, plugin_id: str) -> builtins.list[str]:
        names = {
            "jarvis_commands": "commands",
            "jarvis_tools": "tools",
            "jarvis_before_message": "before_message",
            "jarvis_after_answer": "after_answer",
        }
        found = []
        for hook in _HOOKS:
            if any(impl.plugin_name == plugin_id for impl in getattr(self.pm.hook, hook).get_hookimpls()):
                found.append(names[hook])
        return found

    # --- state ---------------------------------------------------------------------------

    def list(self) -> builtins.list[dict]:
        return [record.to_dict() for record in self.records.values()]

    def get(self, plugin_id: str) -> PluginRecord:
        record = self.records.get(plugin_id)
        if record is None:
            raise NotFound(f"no plugin {plugin_id!r}", details={"available": sorted(self.records)})
        return record

    async def set_enabled(self, plugin_id: str, enabled: bool) -> tuple[PluginRecord, bool]:
        """Enable or disable at once and for good; returns (record, whether it changed).

        Enabling an enabled plugin is a no-op. A plugin that failed to load cannot be enabled.
        """
        record = self.get(plugin_id)
        if enabled and record.plugin is None:
            raise Conflict(f"plugin {plugin_id!r} failed to load and cannot be enabled: {record.last_error}")
        changed = record.enabled != enabled
        async with self.db.session() as session:
            state = await session.get(PluginState, plugin_id)
            if state is None:
                session.add(PluginState(plugin_id=plugin_id, enabled=enabled, updated_at=utcnow()))
            else:
                state.enabled, state.updated_at = enabled, utcnow()
        record.enabled = enabled
        if changed and self.on_change:
            self.on_change(record)
        return record, changed

    def _note_error(self, record: PluginRecord, message: str) -> None:
        record.last_error = message[:1000]
        record.last_error_at = datetime.now(UTC).isoformat()

    # --- calling hooks ---------------------------------------------------------------------

    def _impls(self, hook: str):
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            record = self.records.get(impl.plugin_name)
            if record is not None and record.enabled:
                yield record, impl

    async def _call(self, record: PluginRecord, function, *args, **kwargs) -> Any:
        """Run plugin code in isolation: sync code in a thread, errors kept on the plugin."""
        try:
            if inspect.iscoroutinefunction(function):
                return await function(*args, **kwargs)
            result = await asyncio.to_thread(function, *args, **kwargs)
            return await result if inspect.isawaitable(result) else result
        except Exception as exc:
            log.exception("plugin %s failed", record.id)
            self._note_error(record, f"{type(exc).__name__}: {exc}")
            if self.on_change:
                self.on_change(record)
            raise

    def _collect(self, hook: str) -> builtins.list[tuple[PluginRecord, Any]]:
        items = []
        for record, impl in self._impls(hook):
            try:
                for item in impl.function() or []:
                    items.append((record, item))
            except Exception as exc:
                log.exception("plugin %s failed in %s", record.id, hook)
                self._note_error(record, f"{hook}: {type(exc).__name__}: {exc}")
        return items

    def commands(self) -> dict[str, tuple[PluginRecord, Command]]:
        found: dict[str, tuple[PluginRecord, Command]] = {}
        for record, command in self._collect("jarvis_commands"):
            found.setdefault(command.name.lower(), (record, command))
        return found

    def tools(self) -> dict[str, tuple[PluginRecord, Tool]]:
        found: dict[str, tuple[PluginRecord, Tool]] = {}
        for record, tool in self._collect("jarvis_tools"):
            found.setdefault(tool.name, (record, tool))
        return found

    def match_command(self, text: str) -> CommandCall | None:
        """`/name args` naming an enabled command; `/help` lists them. None for anything else."""
        match = _COMMAND.match(text.strip())
        if not match:
            return None
        name, args = match.group(1).lower(), (match.group(2) or "").strip()
        commands = self.commands()
        if name in commands:
            record, command = commands[name]
            return CommandCall(record, command, args)
        if name == "help" or commands:
            return CommandCall(_HELP_RECORD, _help_command(commands, unknown=None if name == "help" else name), args)
        return None

    async def run_command(self, call: CommandCall, context: Context) -> str:
        try:
            return str(await self._call(call.plugin, call.command.handler, call.args, context))
        except Exception as exc:
            return f"/{call.command.name} failed: {type(exc).__name__}: {exc}"

    async def before_message(self, message: str, context: Context) -> str:
        for record, impl in self._impls("jarvis_before_message"):
            try:
                result = await self._call(record, impl.function, message=message, context=context)
            except Exception:
                continue  # isolated: the message goes on unchanged
            if isinstance(result, str) and result.strip():
                message = result
        return message

    async def after_answer(self, message: str, answer: str, context: Context) -> None:
        for record, impl in self._impls("jarvis_after_answer"):
            try:
                await self._call(record, impl.function, message=message, answer=answer, context=context)
            except Exception:
                continue

    async def call_tool(self, name: str, arguments: dict, context: Context) -> str:
        tools = self.tools()
        if name not in tools:
            return f"error: no tool named {name!r}"
        record, tool = tools[name]
        try:
            return str(await self._call(record, tool.handler, arguments, context))
        except Exception as exc:
            return f"error: {type(exc).__name__}: {exc}"


_HELP_RECORD = PluginRecord("help", "help", "", "lists the chat commands", "builtin")


def _help_command(commands: dict[str, tuple[PluginRecord, Command]], *, unknown: str | None) -> Command:
    def show(_args: str, _context: Context) -> str:
        lines = [f"Unknown command /{unknown}." if unknown else "Chat commands:"]
        if unknown:
            lines.append("Chat commands:")
        for name, (_record, command) in sorted(commands.items()):
            lines.append(f"/{name}{' ' + command.usage if command.usage else ''} — {command.description}")
        return "\n".join(lines)

    return Command("help", "list the chat commands", show)


def _own_version() -> str:
    from jarvis import __version__

    return __version__
