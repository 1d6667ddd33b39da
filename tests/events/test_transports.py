"""Events between replicas, in one process: two buses, each with its own transport connection
(as two replicas have), on the run's real PostgreSQL (LISTEN/NOTIFY) and a real redis-server."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
import pytest
from sqlalchemy import text

from jarvis.events import Event, EventBus, start_transport
from jarvis.events.postgres import PostgresRelay, asyncpg_dsn
from jarvis.storage.db import Database

WAIT = 10.0  # a bounded wait for delivery; the issue asks for well under a second


@asynccontextmanager
async def replicas(backend: str, db: Database, redis_url: str | None, names=("a", "b")):
    """Buses named `names`, each connected by its own transport."""
    async with AsyncExitStack() as stack:
        buses = []
        for name in names:
            bus = EventBus(replica=name)
            relay = await start_transport(bus, database_url=db.url, redis_url=redis_url if backend == "redis" else None)
            assert relay is not None and relay.backend == backend and relay.connected
            stack.push_async_callback(relay.close)
            buses.append(bus)
        yield buses


async def next_event(queue: asyncio.Queue[Event], type: str) -> Event:
    async def wanted() -> Event:
        while True:
            event = await queue.get()
            if event.type == type:
                return event

    return await asyncio.wait_for(wanted(), WAIT)


@pytest.fixture(params=["postgres", "redis"])
def backend(request):
    return request.param


@pytest.fixture
def redis_url(backend, request):
    return request.getfixturevalue("redis_server").url if backend == "redis" else None


async def test_an_event_published_on_one_replica_reaches_the_other_once(pg_database, backend, redis_url):
    async with replicas(backend, pg_database, redis_url) as (a, b):
        async with a.subscribe() as on_a, b.subscribe() as on_b:
            a.publish("memory.created", {"id": 7, "user": "alice", "text": "naïve ünïcode"})
            heard = await next_event(on_b, "memory.created")
            assert heard.data == {"id": 7, "user": "alice", "text": "naïve ünïcode"}
            assert heard.origin == "a" and heard.published_at is not None
            # B answers; by the time A hears that, A has heard its own event back (the channel
            # keeps order) and must have dropped it: A's subscriber saw it once, when published
            b.publish("test.marker", {})
            seen_on_a = [await next_event(on_a, "memory.created")]
            marker = await asyncio.wait_for(on_a.get(), WAIT)
            assert marker.type == "test.marker" and marker.origin == "b"
            while not on_a.empty():
                seen_on_a.append(on_a.get_nowait())
            assert [e.type for e in seen_on_a] == ["memory.created"]
        assert b.transport is not None and b.transport.received >= 1
        assert a.status() == {"backend": backend, "connected": True, "replica": "a"}


async def test_many_events_arrive_in_order(pg_database, backend, redis_url):
    async with replicas(backend, pg_database, redis_url) as (a, b), b.subscribe(maxsize=5000) as on_b:
        for i in range(500):
            a.publish("download.progress", {"model": "m", "downloaded_bytes": i})
        got = [(await next_event(on_b, "download.progress")).data["downloaded_bytes"] for _ in range(500)]
    assert got == list(range(500))


async def test_log_records_stay_on_their_replica(pg_database, backend, redis_url):
    async with replicas(backend, pg_database, redis_url) as (a, b), b.subscribe() as on_b:
        a.publish("log.record", {"message": "local only"})
        a.publish("test.marker", {})
        assert (await asyncio.wait_for(on_b.get(), WAIT)).type == "test.marker"


async def test_an_event_too_large_for_notify_goes_by_reference_and_is_cleaned_up(pg_database):
    big = {"text": "x" * 20_000, "items": list(range(2000))}
    async with replicas("postgres", pg_database, None) as (a, b):
        async with b.subscribe() as on_b:
            a.publish("memory.created", big)
            a.publish("test.small", {"after": True})
            assert (await next_event(on_b, "memory.created")).data == big
            assert (await asyncio.wait_for(on_b.get(), WAIT)).type == "test.small"  # order kept
        async with pg_database.session() as session:
            assert (await session.execute(text("SELECT count(*) FROM event_payloads"))).scalar() == 1
        relay = a.transport
        assert isinstance(relay, PostgresRelay)
        relay.keep_seconds = 0
        await relay.clean()
        async with pg_database.session() as session:
            assert (await session.execute(text("SELECT count(*) FROM event_payloads"))).scalar() == 0


async def test_a_lost_postgres_connection_is_reconnected_and_health_says_so(pg_database):
    async with replicas("postgres", pg_database, None) as (a, b):
        conn = await asyncpg.connect(asyncpg_dsn(pg_database.url))
        try:
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'jarvis-events' AND datname = current_database()"
            )
        finally:
            await conn.close()
        assert killed == 2
        for bus in (a, b):
            await wait_until(lambda bus=bus: bus.transport.reconnects >= 1 and bus.status()["connected"])
        async with b.subscribe() as on_b:
            a.publish("memory.created", {"id": 1})
            assert (await next_event(on_b, "memory.created")).data == {"id": 1}


async def test_a_lost_redis_server_is_reconnected_and_health_says_so(pg_database, own_redis_server):
    async with replicas("redis", pg_database, own_redis_server.url) as (a, b):
        own_redis_server.stop()
        await wait_until(lambda: not a.status()["connected"] and not b.status()["connected"])
        a.publish("memory.created", {"id": "sent while down"})  # queued, sent once connected again
        own_redis_server.start()  # the same port
        await wait_until(lambda: a.status()["connected"] and b.status()["connected"], timeout=30)
        async with b.subscribe() as on_b:
            a.publish("memory.created", {"id": 2})
            # The queued event is flushed after the reconnect, possibly after b subscribed: it may come first.
            first = await next_event(on_b, "memory.created")
            if first.data == {"id": "sent while down"}:
                first = await next_event(on_b, "memory.created")
            assert first.data == {"id": 2}
        assert a.transport.dropped == 0


async def test_sqlite_stays_in_process(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    bus = EventBus(replica="only")
    assert await start_transport(bus, database_url=db.url, redis_url=None) is None
    assert bus.status() == {"backend": "local", "connected": True, "replica": "only"}
    await db.close()


async def wait_until(condition, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
