"""`/api/events`: one SSE stream of every bus event a client selects (download progress, model
load and unload, plugin changes, new memories, log records at or above a level).

`follow` is shared with the `subscribe` frame of `/ws`. Log records and other users' events
(their memories) are for admins; an ordinary user gets their own and the shared ones
(downloads, models, plugins).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, nullcontext
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query
from sse_starlette import EventSourceResponse

from jarvis.api.deps import AdminDep, ServicesDep, UserDep
from jarvis.errors import Forbidden, InvalidInput
from jarvis.events import Event
from jarvis.logs import LOG_EVENT, parse_level
from jarvis.services import Services

router = APIRouter(tags=["events"])

READY = "ready"  # first on every stream: the subscription is live from here on
MAX_TYPES = 50
_TYPE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


@dataclass(frozen=True)
class Selection:
    """Which events a client wants: `types` are exact types or prefixes (`download` covers
    `download.progress`); None means every type. Log records come only with a `log_level`
    (naming `log` or `log.record` in `types` without one means WARNING). `user`, when set,
    drops events that belong to another user (None: an admin's view of everyone's)."""

    types: tuple[str, ...] | None = None
    log_level: int | None = None
    user: str | None = None

    @classmethod
    def parse(
        cls, types: str | list[str] | None, log_level: str | None, *, user: str = "default", admin: bool = True
    ) -> Selection:
        """Raises InvalidInput for a malformed type, too many types or an unknown level;
        Forbidden when an ordinary user asks for log records."""
        if isinstance(types, str):
            types = types.split(",")
        wanted = None
        if types is not None:
            wanted = tuple(dict.fromkeys(t.strip() for t in types if t.strip()))
            if len(wanted) > MAX_TYPES:
                raise InvalidInput(f"at most {MAX_TYPES} event types")
            for name in wanted:
                if name != "*" and (len(name) > 100 or not _TYPE.match(name)):
                    raise InvalidInput(
                        f"invalid event type {name[:100]!r}: use a type like download.progress or a prefix like download"
                    )
            if "*" in wanted or not wanted:
                wanted = None
        level = parse_level(log_level)
        if level is None and wanted is not None and any(_covers(t, LOG_EVENT) for t in wanted):
            level = logging.WARNING
        if level is not None and not admin:
            raise Forbidden("log records are for admins (JARVIS_ADMIN_USERS)")
        return cls(wanted, level, None if admin else user)

    def wants_type(self, event_type: str) -> bool:
        if event_type == LOG_EVENT:
            return self.log_level is not None
        return self.types is None or any(_covers(t, event_type) for t in self.types)

    def wants(self, event: Event) -> bool:
        if self.user is not None and event.data.get("user", self.user) != self.user:
            return False
        if event.type == LOG_EVENT:
            return self.log_level is not None and event.data.get("levelno", 0) >= self.log_level
        return self.wants_type(event.type)

    def describe(self) -> dict:
        level = logging.getLevelName(self.log_level) if self.log_level is not None else None
        return {"events": list(self.types) if self.types is not None else ["*"], "log_level": level}


def _covers(pattern: str, event_type: str) -> bool:
    return event_type == pattern or event_type.startswith(pattern + ".")


async def follow(services: Services, selection: Selection) -> AsyncGenerator[Event, None]:
    """`ready`, then the current state of every download, then each selected bus event as it
    is published."""
    logs = getattr(services, "logs", None)
    live = logs.live(selection.log_level) if logs is not None and selection.log_level is not None else nullcontext()
    with live:
        async with services.bus.subscribe() as queue:
            yield Event(READY, selection.describe())
            if selection.wants_type("download.progress"):
                for snapshot in services.downloads.snapshots():
                    yield Event("download.progress", snapshot)
            while True:
                event = await queue.get()
                if selection.wants(event):
                    yield event


@router.get("/api/events")
async def events(
    services: ServicesDep,
    user: UserDep,
    admin: AdminDep,
    types: Annotated[
        str | None,
        Query(
            max_length=2000, description="comma list of types or prefixes, e.g. `download,model.loaded`; all if absent"
        ),
    ] = None,
    log_level: Annotated[
        str | None, Query(max_length=16, description="also stream log records at or above this level")
    ] = None,
) -> EventSourceResponse:
    """SSE: `ready`, current download states, then every selected event as `event: <type>`
    with JSON data (log records as `log.record`)."""
    selection = Selection.parse(types, log_level, user=user, admin=admin)

    async def stream() -> AsyncIterator[dict]:
        async with aclosing(follow(services, selection)) as followed:
            async for event in followed:
                yield {"event": event.type, "data": json.dumps(event.data, default=str)}

    return EventSourceResponse(stream(), ping=15)
