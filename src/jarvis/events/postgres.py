"""Events between replicas over PostgreSQL's LISTEN/NOTIFY: no service besides the database.

One connection per replica (application_name `jarvis-events`) listens on the channel and
sends; a batch of events is one `pg_notify` statement, so one transaction and one round trip.
A NOTIFY payload must stay under 8000 bytes: a larger event is written to `event_payloads`
and only its row id is notified; receivers read the row, and rows older than
PAYLOAD_KEEP_SECONDS are deleted by whichever replica cleans up next.
"""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg
from sqlalchemy.engine import URL

from jarvis.events.bus import EventBus
from jarvis.events.relay import KEEPALIVE_SECONDS, Relay

CHANNEL = "jarvis_events"
NOTIFY_LIMIT = 7900  # bytes; PostgreSQL refuses payloads of 8000 or more
PAYLOAD_KEEP_SECONDS = 300
CLEANUP_SECONDS = 30.0


def asyncpg_dsn(url: URL) -> str:
    """The asyncpg DSN for a SQLAlchemy `postgresql+asyncpg://` URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresRelay(Relay):
    backend = "postgres"

    def __init__(self, bus: EventBus, dsn: str, *, replica: str) -> None:
        super().__init__(bus, replica=replica)
        self.dsn = dsn
        self.conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one operation at a time on the connection
        self._lost = asyncio.Event()
        self._cleaned_at = 0.0
        self.keep_seconds: float = PAYLOAD_KEEP_SECONDS  # how long a large event's row stays readable

    async def _open(self) -> None:
        self._lost = asyncio.Event()
        conn = await asyncpg.connect(self.dsn, timeout=10, server_settings={"application_name": "jarvis-events"})
        conn.add_termination_listener(lambda _conn: self._lost.set())
        await conn.add_listener(CHANNEL, self._notified)
        self.conn = conn

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.heard(payload)

    async def _shut(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:
                conn.terminate()

    async def _watch(self) -> None:
        await self._lost.wait()

    async def _ping(self) -> None:
        assert self.conn is not None
        async with self._lock:
            await self.conn.fetchval("SELECT 1")

    async def _send_batch(self, payloads: list[str]) -> None:
        conn = self.conn
        assert conn is not None
        async with self._lock, conn.transaction():
            notes = []
            for payload in payloads:
                if len(payload.encode()) > NOTIFY_LIMIT:
                    row = await conn.fetchval("INSERT INTO event_payloads (body) VALUES ($1) RETURNING id", payload)
                    notes.append(json.dumps({"ref": row, "o": self.replica}))
                else:
                    notes.append(payload)
            # one statement, called row by row in the array's order
            await conn.execute("SELECT pg_notify($1, note) FROM unnest($2::text[]) AS note", CHANNEL, notes)

    async def _resolve(self, raw: str) -> str | None:
        if not raw.startswith('{"ref"'):
            return raw
        reference = json.loads(raw)
        if reference.get("o") == self.replica:
            return None  # our own, delivered when it was published
        assert self.conn is not None
        async with self._lock:
            body = await self.conn.fetchval("SELECT body FROM event_payloads WHERE id = $1", int(reference["ref"]))
        if body is None:
            raise ValueError(f"event payload {reference['ref']} is gone (read after {self.keep_seconds} s?)")
        return body

    async def _housekeeping(self) -> None:
        if time.monotonic() - self._cleaned_at >= max(CLEANUP_SECONDS, KEEPALIVE_SECONDS):
            await self.clean()

    async def clean(self) -> None:
        """Delete the rows of large events older than `keep_seconds` (every replica's)."""
        self._cleaned_at = time.monotonic()
        assert self.conn is not None
        async with self._lock:
            await self.conn.execute(
                "DELETE FROM event_payloads WHERE created_at < now() - make_interval(secs => $1)",
                float(self.keep_seconds),
            )
