"""The event bus: typed events fanned out to subscribers (SSE streams, sockets).

Publishing never blocks: a subscriber that falls behind loses its oldest events first.
With a transport (events/postgres.py, events/redis.py) every event published here is also
sent to the other replicas, and theirs are delivered here as if published locally.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

# Events that stay in the replica that raised them. Log records are published only while a
# local subscriber follows them (logs.live), and every replica's records are in the shared
# database (`GET /api/logs`); sending them would also feed back the transport's own logging.
LOCAL_ONLY = ("log.record",)


@dataclass(frozen=True)
class Event:
    type: str  # "download.progress", "download.error", "model.loaded", …
    data: dict
    origin: str | None = field(default=None, compare=False)  # the replica that published it (None: this one)
    published_at: float | None = field(default=None, compare=False)  # time.time() at the origin


class Transport(Protocol):
    """Carries events between replicas (see events/postgres.py and events/redis.py)."""

    backend: str

    @property
    def connected(self) -> bool: ...

    def send(self, event: Event) -> None:
        """Queue an event for the other replicas; never blocks."""

    async def close(self) -> None: ...


class EventBus:
    def __init__(self, *, replica: str | None = None) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self.replica = replica
        self.transport: Transport | None = None

    def publish(self, type: str, data: dict) -> None:
        event = Event(type, data, self.replica, time.time())
        self.deliver(event)
        if self.transport is not None and type not in LOCAL_ONLY:
            self.transport.send(event)

    def deliver(self, event: Event) -> None:
        """Hand an event to this replica's subscribers (a transport calls this for the others')."""
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self, *, maxsize: int = 1000) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def status(self) -> dict:
        """For health: which backend carries events between replicas and whether it is connected."""
        if self.transport is None:
            return {"backend": "local", "connected": True, "replica": self.replica}
        return {"backend": self.transport.backend, "connected": self.transport.connected, "replica": self.replica}
