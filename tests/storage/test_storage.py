"""Storage on SQLite and a real PostgreSQL server: migrations, one row per message, recovery."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from jarvis.memory import MemoryService
from jarvis.storage import repos
from jarvis.storage.db import Database, alembic_config


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request, make_settings):
    database = Database(make_settings(request.param).db_url)
    await database.migrate()
    yield database
    await database.close()


async def test_migrations_create_the_tables_and_are_idempotent(db):
    await db.migrate()  # a second start changes nothing
    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        versions = set((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
    assert {"chat_sessions", "chat_messages", "alembic_version"} <= tables
    assert versions == set(ScriptDirectory.from_config(alembic_config()).get_heads())


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_memories_from_before_users_belong_to_the_default_user(make_settings, backend):
    """A database from before memories had owners upgrades in place: its memories become the
    "default" user's and stay searchable (on SQLite the FTS triggers survive the new column)."""
    database = Database(make_settings(backend).db_url)

    def upgrade_to(target):
        def run(connection):
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, target)

        return run

    async with database.engine.begin() as conn:
        await conn.run_sync(upgrade_to("0003_memory"))
        await conn.execute(
            text(
                "INSERT INTO memories (kind, content, source, created_at, use_count, pinned) "
                "VALUES ('fact', 'the old zeppelin memory', 'api', CURRENT_TIMESTAMP, 0, false)"
            )
        )
    await database.migrate()
    memory = MemoryService(database)
    found = await memory.search("zeppelin")
    added = await memory.add("a new zeppelin memory", user="alice")
    assert [(m.content, m.user_id) for m, _ in found] == [("the old zeppelin memory", "default")]
    assert [m.id for m, _ in await memory.search("zeppelin", user="alice")] == [added.id]
    await database.close()


async def test_sqlite_uses_wal(make_settings):
    database = Database(make_settings("sqlite").db_url)
    await database.migrate()
    async with database.engine.connect() as conn:
        mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
    await database.close()
    assert mode == "wal"


async def test_one_row_per_message_in_order(db):
    async with db.session() as s:
        session = await repos.create_session(s, title="t")
        for index in range(20):  # written faster than the clock ticks: order must still hold
            await repos.add_message(
                s, session_id=session.id, role="user" if index % 2 == 0 else "assistant", content=str(index)
            )
    async with db.session() as s:
        rows = await repos.list_messages(s, session.id)
        count = (
            await s.execute(text("SELECT count(*) FROM chat_messages WHERE session_id = :id"), {"id": session.id})
        ).scalar_one()
    assert [row.content for row in rows] == [str(i) for i in range(20)]
    assert count == 20
    assert all(row.created_at.tzinfo is not None for row in rows)


async def test_unfinished_answers_are_marked_interrupted_on_start(db):
    async with db.session() as s:
        session = await repos.create_session(s)
        message = await repos.add_message(
            s, session_id=session.id, role="assistant", content="half an ans", status="streaming"
        )
    async with db.session() as s:
        assert await repos.mark_unfinished_interrupted(s) == 1
    async with db.session() as s:
        (row,) = await repos.list_messages(s, session.id)
    assert row.id == message.id and row.status == "interrupted" and row.content == "half an ans"


async def test_deleting_a_session_deletes_its_messages(db):
    async with db.session() as s:
        session = await repos.create_session(s)
        await repos.add_message(s, session_id=session.id, role="user", content="hi")
    async with db.session() as s:
        assert await repos.delete_session(s, session.id)
        assert not await repos.delete_session(s, session.id)
    async with db.session() as s:
        assert await repos.list_messages(s, session.id) == []


async def test_failed_unit_of_work_leaves_nothing(db):
    with pytest.raises(RuntimeError):
        async with db.session() as s:
            session = await repos.create_session(s, title="doomed")
            await repos.add_message(s, session_id=session.id, role="user", content="hi")
            raise RuntimeError("boom")
    async with db.session() as s:
        assert await repos.get_session(s, session.id) is None


async def test_concurrent_writers(db):
    async with db.session() as s:
        session = await repos.create_session(s)

    async def write(index: int) -> None:
        async with db.session() as s:
            await repos.add_message(s, session_id=session.id, role="user", content=str(index))

    await asyncio.gather(*(write(i) for i in range(30)))
    async with db.session() as s:
        assert len(await repos.list_messages(s, session.id)) == 30
