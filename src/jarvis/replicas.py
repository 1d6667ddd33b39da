"""Replicas on one PostgreSQL: who is alive, and what happens to the answers of one that dies.

Each replica registers a row in `replicas` and, on a connection of its own, holds a session
advisory lock named by its id for as long as it lives. PostgreSQL releases the lock the
moment that connection ends, which it does when the process dies (kill -9 included: the
kernel closes the socket) and, through the TCP keepalives set below, within about half a
minute when the whole machine vanishes. Every replica looks every REAP_SECONDS: a row whose
lock it can take belongs to a dead replica, whose `streaming` answers it marks
`interrupted` (the partial text stays), and whose row it deletes.

A replica that starts marks interrupted only the answers of replicas no longer registered,
never those another live replica is writing. On SQLite (one process) every unfinished answer
is marked at start, as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import socket
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from jarvis.events import EventBus
from jarvis.storage import repos
from jarvis.storage.db import Database
from jarvis.storage.tables import Replica, utcnow

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

LOCK_CLASS = 0x4A5250  # "JRP": the first key of every replica's advisory lock (migrations use another space)
REAP_SECONDS = 1.0
BACKOFF_MAX = 5.0
KEEPALIVES = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}


def new_replica_id() -> str:
    """Host, pid and a random suffix: a restarted process is a new replica."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(3)}"


def lock_key(replica_id: str) -> int:
    return int.from_bytes(hashlib.sha256(replica_id.encode()).digest()[:4], "big", signed=True)


class ReplicaRegistry:
    def __init__(self, db: Database, replica_id: str, *, bus: EventBus | None = None) -> None:
        self.db = db
        self.id = replica_id
        self.bus = bus
        self.key = lock_key(replica_id)
        self.conn: asyncpg.Connection | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Register (lock, then row), mark the answers of replicas gone since, then watch."""
        await self._register()
        interrupted = await self.reap(orphans=True)
        if interrupted:
            log.warning("marked %d answers cut off by replicas that stopped as interrupted", interrupted)
        self._task = asyncio.create_task(self._watch(), name="replicas")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            async with self.db.session() as session:
                await repos.interrupt_answers_of(session, [self.id])
                await session.execute(delete(Replica).where(Replica.id == self.id))
        except Exception:  # the database went first: the others find us dead instead
            log.warning("could not unregister replica %s", self.id, exc_info=True)
        if self.conn is not None:
            self.conn.terminate()  # releases the lock

    async def _register(self) -> None:
        import asyncpg  # the postgres extra: only replicas on PostgreSQL get here

        from jarvis.events.postgres import asyncpg_dsn

        self.conn = await asyncpg.connect(
            asyncpg_dsn(self.db.url),
            timeout=10,
            server_settings={"application_name": "jarvis-replica", **KEEPALIVES},
        )
        await self.conn.execute("SELECT pg_advisory_lock($1, $2)", LOCK_CLASS, self.key)
        async with self.db.session() as session:
            await session.merge(
                Replica(id=self.id, host=socket.gethostname()[:255], pid=os.getpid(), started_at=utcnow())
            )

    async def alive(self) -> list[str]:
        """The registered replicas (this one included)."""
        async with self.db.session() as session:
            return list((await session.scalars(select(Replica.id).order_by(Replica.started_at))).all())

    async def reap(self, *, orphans: bool = False) -> int:
        """Mark the answers of dead replicas interrupted and forget those replicas; returns
        how many answers were marked."""
        assert self.conn is not None
        dead = []
        for replica_id in await self.alive():
            key = lock_key(replica_id)
            if replica_id == self.id or key == self.key:
                continue
            if await self.conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_CLASS, key):
                dead.append((replica_id, key))  # held until its answers are marked: no one else does it twice
        interrupted = 0
        try:
            if dead or orphans:
                async with self.db.session() as session:
                    interrupted = await repos.interrupt_answers_of(session, [r for r, _ in dead], orphans=orphans)
                    if dead:
                        await session.execute(delete(Replica).where(Replica.id.in_([r for r, _ in dead])))
        finally:
            for _, key in dead:
                await self.conn.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_CLASS, key)
        for replica_id, _ in dead:
            log.warning("replica %s stopped; its unfinished answers are marked interrupted", replica_id)
        if dead and self.bus is not None:
            self.bus.publish("replica.stopped", {"replicas": [r for r, _ in dead], "interrupted_answers": interrupted})
        return interrupted

    async def _watch(self) -> None:
        delay = REAP_SECONDS
        while True:
            await asyncio.sleep(delay)
            try:
                if self.conn is None or self.conn.is_closed():
                    await self._register()
                    log.warning("replica %s: registry connection restored", self.id)
                await self.reap()
                delay = REAP_SECONDS
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("replica %s: could not check the other replicas (%s); retrying", self.id, exc)
                if self.conn is not None:
                    self.conn.terminate()
                    self.conn = None
                delay = min(delay * 2, BACKOFF_MAX)
