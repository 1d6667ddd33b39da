"""What the PostgreSQL and Redis transports share: the wire format, a sender that batches,
an ordered receiver, and a supervisor that reconnects with backoff.

On the wire an event is one JSON text `{"o": origin replica, "n": sequence, "t": type,
"d": data, "ts": publish time}`. Every replica hears its own events back and drops them
(they were delivered locally when published).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from itertools import count

from jarvis.events.bus import Event, EventBus

log = logging.getLogger(__name__)

OUTGOING_LIMIT = 10_000  # events queued while disconnected; the oldest go first beyond this
BATCH = 200  # events sent in one round trip
KEEPALIVE_SECONDS = 5.0  # a connection that cannot answer a ping within this is replaced
CONNECT_WAIT_SECONDS = 10.0  # start() waits this long for the first connection
BACKOFF_MIN, BACKOFF_MAX = 0.2, 5.0
SEND_TRIES = 3  # a batch that fails this often is dropped (counted in `dropped`)


def encode(event: Event, sequence: int) -> str:
    # default=str: a datetime in someone's event data arrives as its text
    body = {"o": event.origin, "n": sequence, "t": event.type, "d": event.data, "ts": event.published_at}
    return json.dumps(body, default=str, separators=(",", ":"))


def decode(text: str) -> Event:
    """Raises ValueError (or KeyError, TypeError) for text that is not an event."""
    body = json.loads(text)
    if not isinstance(body, dict) or not isinstance(body["t"], str) or not isinstance(body["d"], dict):
        raise ValueError("not an event")
    return Event(body["t"], body["d"], body.get("o"), body.get("ts"))


class Relay:
    """Base of a transport: subclasses open the connection, send a batch of payloads, and
    feed what they hear into `heard(raw)`."""

    backend = "?"

    def __init__(self, bus: EventBus, *, replica: str) -> None:
        self.bus = bus
        self.replica = replica
        self.on_lag: Callable[[float], None] | None = None  # seconds from publish to delivery here
        self.sent = self.received = self.dropped = self.reconnects = 0
        self._sequence = count()
        self._outgoing: asyncio.Queue[str] = asyncio.Queue(maxsize=OUTGOING_LIMIT)
        self._incoming: asyncio.Queue[str] = asyncio.Queue()
        self._pending: list[str] = []  # a batch whose send failed, sent first after reconnecting
        self._pending_tries = 0
        self._connected = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        """Connect (waiting up to CONNECT_WAIT_SECONDS for the first connection; later ones are
        retried in the background) and attach to the bus."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._task = asyncio.create_task(self._supervise(), name=f"events-{self.backend}")
        self.bus.transport = self
        try:
            await asyncio.wait_for(self._connected.wait(), CONNECT_WAIT_SECONDS)
        except TimeoutError:
            log.error("events: no %s connection yet; events stay on this replica until it connects", self.backend)

    async def close(self) -> None:
        self._closing = True
        if self.bus.transport is self:
            self.bus.transport = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def send(self, event: Event) -> None:
        payload = encode(event, next(self._sequence))
        if self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._enqueue(payload)
        else:  # published from a worker thread
            self._loop.call_soon_threadsafe(self._enqueue, payload)

    def _enqueue(self, payload: str) -> None:
        if self._outgoing.full():
            self._outgoing.get_nowait()
            self.dropped += 1
        self._outgoing.put_nowait(payload)

    def heard(self, raw: str) -> None:
        """Called by the subclass for each payload received, in order."""
        self._incoming.put_nowait(raw)

    # --- subclasses --------------------------------------------------------------------------

    async def _open(self) -> None:
        raise NotImplementedError

    async def _shut(self) -> None:
        raise NotImplementedError

    async def _send_batch(self, payloads: list[str]) -> None:
        raise NotImplementedError

    async def _resolve(self, raw: str) -> str | None:
        """The event text a received payload stands for (None: not for us)."""
        return raw

    async def _ping(self) -> None:
        raise NotImplementedError

    async def _watch(self) -> None:
        """Return or raise when the connection is lost (beyond what a failed ping shows)."""
        await asyncio.Event().wait()

    async def _housekeeping(self) -> None:
        """Periodic cleanup on the connection (every KEEPALIVE_SECONDS)."""

    # --- the loops ---------------------------------------------------------------------------

    async def _supervise(self) -> None:
        delay = BACKOFF_MIN
        while not self._closing:
            try:
                await self._open()
                if self.reconnects or self._pending:
                    log.warning("events: %s connection restored", self.backend)
                self._connected.set()
                delay = BACKOFF_MIN
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._sender())
                    group.create_task(self._receiver())
                    group.create_task(self._keepalive())
                    group.create_task(self._watch_then_fail())
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # a TaskGroup wraps what failed in an ExceptionGroup
                if self._closing:
                    break
                log.warning(
                    "events: %s connection lost (%s); reconnecting in %.1f s", self.backend, _reason(exc), delay
                )
            finally:
                self._connected.clear()
                with contextlib.suppress(Exception):
                    await self._shut()
            if self._closing:
                break
            self.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    async def _watch_then_fail(self) -> None:
        await self._watch()
        raise ConnectionError("connection closed")

    async def _sender(self) -> None:
        while True:
            if not self._pending:
                self._pending = [await self._outgoing.get()]
                self._pending_tries = 0
                while len(self._pending) < BATCH and not self._outgoing.empty():
                    self._pending.append(self._outgoing.get_nowait())
            self._pending_tries += 1
            try:
                await self._send_batch(self._pending)
            except Exception:
                if self._pending_tries >= SEND_TRIES:
                    log.error("events: dropped %d events that could not be sent", len(self._pending))
                    self.dropped += len(self._pending)
                    self._pending = []
                raise
            self.sent += len(self._pending)
            self._pending = []

    async def _receiver(self) -> None:
        while True:
            raw = await self._incoming.get()
            try:
                text = await self._resolve(raw)
                if text is None:
                    continue
                event = decode(text)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("events: ignored a malformed %s payload: %s", self.backend, exc)
                continue
            if event.origin == self.replica:
                continue
            self.received += 1
            if event.published_at is not None and self.on_lag is not None:
                self.on_lag(max(0.0, time.time() - event.published_at))
            self.bus.deliver(event)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            await asyncio.wait_for(self._ping(), KEEPALIVE_SECONDS)
            await self._housekeeping()


def _reason(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
