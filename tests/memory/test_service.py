"""MemoryService on SQLite (FTS5) and a real PostgreSQL server (tsvector + GIN)."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime

import pytest
from sqlalchemy import inspect, text, update

from jarvis.config import Settings
from jarvis.errors import InvalidInput, NotFound
from jarvis.events import EventBus
from jarvis.memory import (
    MemoryNotFound,
    MemoryService,
    decode_ids,
    encode_ids,
    render_for_prompt,
    store,
)
from jarvis.storage import repos
from jarvis.storage.db import Database
from jarvis.storage.tables import Memory


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def database(request, tmp_path_factory):
    """One migrated database per backend for this module (a PostgreSQL database per test
    would cost seconds each); every test starts from empty tables (see `db`)."""
    values = {"data_dir": tmp_path_factory.mktemp(f"memory-{request.param}")}
    if request.param == "postgres":
        values["database_url"] = request.getfixturevalue("postgres").create_database(f"jarvis_memory_{os.getpid()}")
    database = Database(Settings.build(env_file=None, **values).db_url)
    await database.migrate()
    yield database
    await database.close()


@pytest.fixture
async def db(database):
    async with database.session() as s:
        for table in ("memories", "chat_messages", "chat_sessions"):
            await s.execute(text(f"DELETE FROM {table}"))
    return database


@pytest.fixture
def memory(db) -> MemoryService:
    return MemoryService(db)


FACTS = [
    ("My cat is called Mia", "fact"),
    ("I prefer tea over coffee", "preference"),
    ("Meine Katze frisst am liebsten Thunfisch", "preference"),
    ("The wifi password is on the fridge", "fact"),
    ("I live in Berlin since 2020", "fact"),
    ("Herr Müller ist mein Zahnarzt", "fact"),
    ("Meeting notes: the budget for the garden project is 500 euros", "note"),
]


async def _seed(memory: MemoryService) -> dict[str, Memory]:
    return {content: await memory.add(content, kind=kind) for content, kind in FACTS}


# --- schema ------------------------------------------------------------------------------


async def test_migration_creates_memories_with_full_text_search(db):
    await db.migrate()  # idempotent
    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        memory_columns = await conn.run_sync(lambda sync: {c["name"] for c in inspect(sync).get_columns("memories")})
        message_columns = await conn.run_sync(
            lambda sync: {c["name"] for c in inspect(sync).get_columns("chat_messages")}
        )
    assert "memories" in tables
    assert {
        "id",
        "kind",
        "content",
        "source",
        "session_id",
        "message_id",
        "created_at",
        "last_used_at",
        "use_count",
        "pinned",
    } <= memory_columns
    assert "memory_ids" in message_columns
    if db.is_sqlite:
        assert "memories_fts" in tables
    else:
        assert "content_tsv" in memory_columns


async def test_assistant_message_records_memory_ids(db):
    async with db.session() as s:
        session = await repos.create_session(s)
        message = await repos.add_message(
            s, session_id=session.id, role="assistant", content="hi", memory_ids=encode_ids([3, 1])
        )
    async with db.session() as s:
        (row,) = await repos.list_messages(s, session.id)
    assert row.id == message.id and decode_ids(row.memory_ids) == [3, 1]
    assert (
        encode_ids([]) is None
        and decode_ids(None) == []
        and decode_ids("not json") == []
        and decode_ids('{"a":1}') == []
    )


# --- add, get, list, delete ------------------------------------------------------------------


async def test_add_get_list_delete(memory):
    first = await memory.add("  My cat is called Mia  ", session_id="s1", message_id="m1", pinned=True)
    second = await memory.add("I prefer tea", kind="preference", source="command")
    assert isinstance(first.id, int) and second.id > first.id
    got = await memory.get(first.id)
    assert got.content == "My cat is called Mia" and got.kind == "fact" and got.source == "api"
    assert (got.session_id, got.message_id, got.pinned, got.use_count, got.last_used_at) == ("s1", "m1", True, 0, None)
    assert got.created_at.tzinfo is not None

    rows, total = await memory.list(limit=10, offset=0)
    assert total == 2 and [row.id for row in rows] == [second.id, first.id]  # newest first
    rows, total = await memory.list(limit=1, offset=1)
    assert total == 2 and [row.id for row in rows] == [first.id]
    rows, total = await memory.list(limit=10, offset=0, kind="preference")
    assert total == 1 and rows[0].id == second.id

    await memory.delete(first.id)
    with pytest.raises(MemoryNotFound) as error:
        await memory.get(first.id)
    assert (
        isinstance(error.value, NotFound) and error.value.code == "memory_not_found" and error.value.status_code == 404
    )
    with pytest.raises(MemoryNotFound):
        await memory.delete(first.id)
    third = await memory.add("something new")
    assert third.id > second.id  # a forgotten id is never handed out again


@pytest.mark.parametrize("bad_id", [0, -1, 2**31, 2**70, "1", True, None])
async def test_unknown_or_malformed_ids_are_not_found(memory, bad_id):
    with pytest.raises(MemoryNotFound):
        await memory.get(bad_id)
    with pytest.raises(MemoryNotFound):
        await memory.delete(bad_id)


@pytest.mark.parametrize(
    "content, fields",
    [
        ("", {}),
        ("   \n", {}),
        ("x" * 10_001, {}),
        (None, {}),
        ("ok", {"kind": "opinion"}),
        ("ok", {"source": ""}),
        ("ok", {"source": "Bad Source!"}),
    ],
)
async def test_add_rejects_bad_input_and_stores_nothing(memory, content, fields):
    with pytest.raises(InvalidInput):
        await memory.add(content, **fields)
    assert (await memory.list())[1] == 0


async def test_content_at_the_limit_is_stored_and_found(memory):
    row = await memory.add("needle " + "x" * (10_000 - 7))
    assert len(row.content) == 10_000
    assert [hit.id for hit, _ in await memory.search("needle")] == [row.id]


@pytest.mark.parametrize("fields", [{"limit": 0}, {"limit": 201}, {"offset": -1}, {"kind": "opinion"}, {"limit": "5"}])
async def test_list_rejects_bad_paging(memory, fields):
    with pytest.raises(InvalidInput):
        await memory.list(**fields)


async def test_concurrent_adds(memory):
    rows = await asyncio.gather(*(memory.add(f"memory number {i}") for i in range(30)))
    assert len({row.id for row in rows}) == 30
    assert (await memory.list(limit=100))[1] == 30


# --- search ---------------------------------------------------------------------------------


async def test_search_finds_by_words_best_first(memory):
    seeded = await _seed(memory)
    hits = await memory.search("what is my cat called?")
    assert hits[0][0].id == seeded["My cat is called Mia"].id
    assert all(0.0 <= score <= 1.0 for _, score in hits)
    assert [score for _, score in hits] == sorted((score for _, score in hits), reverse=True)

    assert [m.content for m, _ in await memory.search("Katze")] == ["Meine Katze frisst am liebsten Thunfisch"]
    assert [m.content for m, _ in await memory.search("Müller")] == ["Herr Müller ist mein Zahnarzt"]
    assert [m.content for m, _ in await memory.search("BERLIN")] == ["I live in Berlin since 2020"]
    assert await memory.search("dinosaur") == []


async def test_search_tolerates_inflection(memory):
    await _seed(memory)
    # "cats"/"Katzen" find "cat"/"Katze": porter on SQLite, the prefix retry on PostgreSQL
    assert [m.content for m, _ in await memory.search("cats")] == ["My cat is called Mia"]
    assert [m.content for m, _ in await memory.search("Katzen")] == ["Meine Katze frisst am liebsten Thunfisch"]
    assert [m.content for m, _ in await memory.search("Berl")] == ["I live in Berlin since 2020"]


async def test_search_more_shared_words_rank_higher(memory):
    one = await memory.add("the garden needs water")
    both = await memory.add("the garden project budget")
    hits = await memory.search("garden budget")
    assert [m.id for m, _ in hits] == [both.id, one.id]
    assert hits[0][1] == 1.0 and hits[1][1] == 0.5


async def test_a_rare_word_is_found_however_common_the_other_words_are(memory, db):
    old = await memory.add("the zebra drinks coffee")
    both = await memory.add("coffee with a zebra")
    async with db.session() as s:  # more matches of "coffee" than a word's share of the ranking budget
        await store.add_memories(
            s, [{"kind": "fact", "content": f"coffee number {i}", "source": "test"} for i in range(1200)]
        )
    hits = await memory.search("zebra coffee", limit=5)
    assert {m.id for m, _ in hits[:2]} == {old.id, both.id} and hits[0][1] == hits[1][1] == 1.0
    assert len(await memory.search("coffee", limit=100)) == 100
    assert [m.id for m, _ in await memory.search("zebra", limit=5)] == [both.id, old.id]


async def test_each_user_sees_only_their_own_memories(memory, db):
    mine = await memory.add("Bob takes his coffee black", user="bob", pinned=True)
    async with db.session() as s:  # alice's newer "coffee" memories outnumber a word's ranking budget
        await store.add_memories(
            s,
            [
                {"user_id": "alice", "kind": "fact", "content": f"coffee note {i}", "source": "test"}
                for i in range(1200)
            ],
        )
    assert [m.id for m, _ in await memory.search("coffee", user="bob")] == [mine.id]
    assert [m.id for m, _ in await memory.relevant("how do I take my coffee?", user="bob")] == [mine.id]
    assert len(await memory.search("coffee", user="alice", limit=100)) == 100
    assert all(m.user_id == "alice" for m, _ in await memory.relevant("coffee note 7", user="alice"))
    assert (await memory.list(user="bob"))[1] == 1 and (await memory.list(user="carol"))[1] == 0
    for call in (memory.get(mine.id, user="alice"), memory.delete(mine.id, user="alice")):
        with pytest.raises(MemoryNotFound):
            await call
    assert await memory.mark_used([mine.id], user="alice") == 0
    assert (await memory.stats(user="alice")).pinned == 0 and (await memory.stats(user="bob")).total == 1
    # the same statement captured by two users is kept once for each
    said = "remember that the office closes at six"
    assert (await memory.capture(said, user="alice")).id != (await memory.capture(said, user="bob")).id
    assert (await memory.capture(said, user="bob")).user_id == "bob"
    assert (await memory.get(mine.id, user="bob")).content == "Bob takes his coffee black"


async def test_search_syntax_is_used_when_valid(memory):
    await _seed(memory)
    phrase = await memory.search('"called Mia"')
    assert [m.content for m, _ in phrase] == ["My cat is called Mia"]
    either = {m.content for m, _ in await memory.search("tea OR wifi")}
    assert either == {"I prefer tea over coffee", "The wifi password is on the fridge"}


@pytest.mark.parametrize(
    "query",
    [
        '"unbalanced cat',
        "cat AND OR",
        "NEAR(cat",
        "cat NEAR(",
        "(cat",
        "cat)",
        "cat^",
        "^cat:",
        "content: cat",
        "cat -- '",
        "cat:*",
        "cat & | !",
    ],
)
async def test_search_syntax_errors_are_read_as_plain_words(memory, query):
    await _seed(memory)
    hits = await memory.search(query)
    assert "My cat is called Mia" in [m.content for m, _ in hits]


@pytest.mark.parametrize("query", ["*", "AND OR", "NEAR(", '"', "()", "!!!", "^", "-", "'", "\\", "--", "%_", "\x00"])
async def test_queries_without_words_find_nothing_and_do_not_fail(memory, query):
    await _seed(memory)
    assert await memory.search(query) == []


@pytest.mark.parametrize("fields", [{"query": ""}, {"query": "   "}, {"query": "x" * 100_000}, {"query": "x" * 1001}])
async def test_search_rejects_empty_and_overlong_queries(memory, fields):
    with pytest.raises(InvalidInput):
        await memory.search(**fields)


@pytest.mark.parametrize("fields", [{"limit": 0}, {"limit": 101}, {"limit": -5}, {"limit": 1.5}, {"kind": "opinion"}])
async def test_search_rejects_bad_limits_and_kinds(memory, fields):
    with pytest.raises(InvalidInput):
        await memory.search("cat", **fields)


async def test_search_limit_and_kind(memory):
    for i in range(30):
        await memory.add(f"coffee fact {i}", kind="fact")
        await memory.add(f"coffee preference {i}", kind="preference")
    assert len(await memory.search("coffee", limit=1)) == 1
    assert len(await memory.search("coffee", limit=100)) == 60
    preferences = await memory.search("coffee", limit=100, kind="preference")
    assert len(preferences) == 30 and {m.kind for m, _ in preferences} == {"preference"}


async def test_index_follows_deletes_and_edits(memory, db):
    row = await memory.add("the boat is red")
    await memory.delete(row.id)
    assert await memory.search("boat") == []
    other = await memory.add("the car is blue")
    async with db.session() as s:
        await s.execute(update(Memory).where(Memory.id == other.id).values(content="the bike is green"))
    assert await memory.search("car") == []
    assert [m.id for m, _ in await memory.search("bike")] == [other.id]
    await memory.mark_used([other.id])  # counting a use leaves the index alone
    assert [m.id for m, _ in await memory.search("bike")] == [other.id]


async def test_a_similarity_scorer_is_blended_in(db):
    calls = []

    async def similarity(query, texts):
        calls.append((query, list(texts)))
        return [1.0 if "tea" in t else 0.0 for t in texts]

    memory = MemoryService(db, similarity=similarity, semantic_weight=0.5)
    await memory.add("I drink tea every morning")
    await memory.add("every morning I run")
    hits = await memory.search("every morning")
    assert calls and calls[0][0] == "every morning"
    assert [(m.content, s) for m, s in hits] == [("I drink tea every morning", 1.0), ("every morning I run", 0.5)]


# --- relevant, mark_used ------------------------------------------------------------------------


async def test_relevant_gives_the_top_few_above_the_threshold(memory):
    seeded = await _seed(memory)
    for i in range(10):
        await memory.add(f"my cat likes toy number {i}")
    hits = await memory.relevant("What's my cat called?", limit=3)
    assert len(hits) == 3  # not every memory about the cat
    assert hits[0][0].id == seeded["My cat is called Mia"].id
    assert all(score >= 0.3 for _, score in hits)
    assert await memory.relevant("Tell me a joke") == []
    assert await memory.relevant("what is the weather in Paris today", min_score=0.3) == []


async def test_relevant_for_a_long_message(memory):
    seeded = await _seed(memory)
    message = (
        "Can you suggest a name for my new dog? My cat is called Mia and I'd like something that sounds similar. " * 50
    )
    hits = await memory.relevant(message)
    assert [m.id for m, _ in hits][:1] == [seeded["My cat is called Mia"].id]
    assert await memory.relevant('AND OR "NEAR( * ' + "x" * 200_000) == []


async def test_relevant_always_includes_pinned_memories(memory):
    await _seed(memory)
    pinned = await memory.add("Always answer in German", pinned=True, kind="preference")
    hits = await memory.relevant("What's my cat called?")
    assert (hits[0][0].id, hits[0][1]) == (pinned.id, 1.0)
    assert "My cat is called Mia" in [m.content for m, _ in hits]
    only_pinned = await memory.relevant("hello there")
    assert [m.id for m, _ in only_pinned] == [pinned.id]
    assert [m.id for m, _ in await memory.relevant("")] == [pinned.id]
    assert await memory.relevant("hello there", max_pinned=0) == []


async def test_mark_used(memory):
    row = await memory.add("I prefer tea")
    assert await memory.mark_used([row.id, row.id, 999_999, -1]) == 1
    await memory.mark_used([row.id])
    got = await memory.get(row.id)
    assert got.use_count == 2 and isinstance(got.last_used_at, datetime)
    assert await memory.mark_used([]) == 0


def test_render_for_prompt():
    assert render_for_prompt([]) is None
    block = render_for_prompt([Memory(id=1, kind="fact", content="My cat\nis called Mia")])
    assert block.endswith("- (fact) My cat is called Mia")


# --- capture --------------------------------------------------------------------------------


async def test_capture_from_a_chat_message(memory):
    row = await memory.capture("Remember that my cat is called Mia.", session_id="s1", message_id="m1")
    assert (row.content, row.kind, row.source, row.session_id, row.message_id) == (
        "My cat is called Mia",
        "fact",
        "auto",
        "s1",
        "m1",
    )
    again = await memory.capture("remember: my cat is called Mia", session_id="s2", message_id="m2")
    assert again.id == row.id  # said twice, stored once
    german = await memory.capture("Merk dir, dass ich lieber Tee trinke", session_id="s1", message_id="m3")
    assert (german.content, german.kind) == ("Ich trinke lieber Tee", "preference")
    assert await memory.capture("do you remember the movie?", session_id="s1", message_id="m4") is None
    assert await memory.capture("", session_id=None, message_id=None) is None
    assert (await memory.list())[1] == 2


# --- events, stats ---------------------------------------------------------------------------


async def test_events_for_new_and_forgotten_memories(db):
    bus = EventBus()
    memory = MemoryService(db, bus=bus)
    async with bus.subscribe() as queue:
        row = await memory.add("I prefer tea", kind="preference")
        await memory.delete(row.id)
        created, deleted = queue.get_nowait(), queue.get_nowait()
    assert created.type == "memory.created" and created.data["id"] == row.id and created.data["kind"] == "preference"
    assert deleted.type == "memory.deleted" and deleted.data == {"id": row.id, "user": "default"}


async def test_stats(memory):
    empty = await memory.stats()
    assert empty.total == 0 and empty.oldest is None and empty.newest is None and empty.most_used == []
    assert empty.by_kind == {"fact": 0, "preference": 0, "note": 0, "summary": 0}
    assert empty.searches["served"] == 0 and empty.searches["p95_ms"] is None

    seeded = await _seed(memory)
    await memory.add("Tee ist gut", kind="fact", source="command")
    await memory.capture("remember that my bike is green", session_id="s", message_id="m")
    ids = [row.id for row in seeded.values()]
    for i, memory_id in enumerate(ids[:6]):
        for _ in range(i + 1):
            await memory.mark_used([memory_id])
    for query in ["cat", "tea", '"unbalanced']:
        await memory.search(query)
    await memory.relevant("my cat")

    stats = await memory.stats()
    assert stats.total == len(FACTS) + 2
    assert stats.by_kind == {"fact": 6, "preference": 2, "note": 1, "summary": 0}
    assert stats.by_source == {"api": len(FACTS), "command": 1, "auto": 1}
    contents = [content for content, _ in FACTS] + ["Tee ist gut", "My bike is green"]
    assert stats.chars == sum(len(c) for c in contents)
    assert stats.bytes == sum(len(c.encode()) for c in contents) > stats.chars  # "Müller"
    assert [row.id for row in stats.most_used] == ids[5::-1][:5]  # top 5 by use count
    assert stats.oldest.id == ids[0] and stats.newest.content == "My bike is green"
    assert stats.searches["served"] == 4 and stats.searches["by_origin"] == {"search": 3, "relevant": 1}
    assert 0 < stats.searches["p50_ms"] <= stats.searches["p95_ms"] <= stats.searches["max_ms"]
