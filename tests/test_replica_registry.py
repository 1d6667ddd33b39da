"""Replicas on one PostgreSQL know who is alive: a replica that starts leaves the answers other
live replicas are writing alone, and the answers of a replica that dies are marked interrupted
by one still alive (its connection's advisory lock is the sign of life)."""

from __future__ import annotations

import asyncio

from jarvis.events import EventBus
from jarvis.replicas import ReplicaRegistry
from jarvis.storage import repos
from jarvis.storage.db import Database
from jarvis.storage.tables import ChatMessage


async def answer_of(db: Database, replica_id: str | None) -> str:
    """A session with an answer being written by `replica_id`; returns the answer's id."""
    async with db.session() as session:
        chat = await repos.create_session(session, title="t")
        await repos.add_message(session, session_id=chat.id, role="user", content="q")
        answer = await repos.add_message(
            session, session_id=chat.id, role="assistant", content="partial", status="streaming", replica_id=replica_id
        )
    return answer.id


async def status_of(db: Database, message_id: str) -> str:
    async with db.session() as session:
        return (await session.get(ChatMessage, message_id)).status


async def test_a_starting_replica_spares_live_answers_and_a_dead_replicas_are_interrupted(pg_database):
    a = ReplicaRegistry(pg_database, "replica-a")
    await a.start()
    live = await answer_of(pg_database, "replica-a")
    orphan = await answer_of(pg_database, "replica-long-gone")  # written by a replica no longer registered
    legacy = await answer_of(pg_database, None)  # written before replicas were recorded

    bus = EventBus(replica="replica-b")
    b = ReplicaRegistry(pg_database, "replica-b", bus=bus)
    async with bus.subscribe() as events:
        await b.start()
        assert await status_of(pg_database, live) == "streaming"
        assert await status_of(pg_database, orphan) == "interrupted"
        assert await status_of(pg_database, legacy) == "interrupted"
        assert sorted(await b.alive()) == ["replica-a", "replica-b"]

        # replica A dies: its process ends without a word, so does its connection
        a._task.cancel()
        a.conn.terminate()
        stopped = await asyncio.wait_for(events.get(), 10)
        assert stopped.type == "replica.stopped"
        assert stopped.data == {"replicas": ["replica-a"], "interrupted_answers": 1}
    assert await status_of(pg_database, live) == "interrupted"
    async with pg_database.session() as session:
        row = await session.get(ChatMessage, live)
    assert row.content == "partial" and "stopped" in row.error
    assert await b.alive() == ["replica-b"]

    await b.close()  # a clean stop unregisters
    assert await b.alive() == []
