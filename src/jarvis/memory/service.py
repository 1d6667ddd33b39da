"""Long-term memory: what the assistant keeps about its user across chats.

Memories come from the API, from the `/remember` command and from plain statements in a
chat ("remember that …", "merk dir, dass …"); the chat asks `relevant()` for the few that
bear on a message and records which ones it used.
"""

from __future__ import annotations

import builtins
import json
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.errors import InvalidInput, NotFound
from jarvis.events import EventBus
from jarvis.memory import capture as capture_rules
from jarvis.memory import search as fts
from jarvis.memory import store
from jarvis.storage.db import Database
from jarvis.storage.tables import Memory

KINDS = ("fact", "preference", "note", "summary")
MAX_CONTENT_CHARS = 10_000
MAX_SEARCH_LIMIT = 100
MAX_LIST_LIMIT = 200
MAX_ID = 2**31 - 1  # the column is a 32-bit integer on PostgreSQL
_SOURCE = re.compile(r"[a-z][a-z0-9_.-]{0,31}")

# An async scorer of semantic similarity: (query, memory texts) -> one value in 0..1 per text.
SimilarityScorer = Callable[[str, Sequence[str]], Awaitable[Sequence[float]]]


class MemoryNotFound(NotFound):
    code = "memory_not_found"


@dataclass
class SearchStats:
    """Searches served by this process since it started (in-process on purpose: a counter
    row written on every search would cost more than the search; with several workers
    behind a load balancer each reports its own). Latency percentiles cover the last
    `window` searches."""

    window: int = 1000
    served: int = 0
    by_origin: dict[str, int] = field(default_factory=lambda: {"search": 0, "relevant": 0})
    _latencies: deque = field(default_factory=deque)

    def record(self, origin: str, seconds: float) -> None:
        self.served += 1
        self.by_origin[origin] = self.by_origin.get(origin, 0) + 1
        self._latencies.append(seconds * 1000)
        while len(self._latencies) > self.window:
            self._latencies.popleft()

    def summary(self) -> dict:
        ordered = sorted(self._latencies)

        def percentile(p: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)

        return {
            "served": self.served,
            "by_origin": dict(self.by_origin),
            "p50_ms": percentile(0.50),
            "p95_ms": percentile(0.95),
            "max_ms": round(ordered[-1], 3) if ordered else None,
            "window": len(ordered),
        }


@dataclass
class MemoryStats:
    total: int
    by_kind: dict[str, int]
    by_source: dict[str, int]
    pinned: int
    chars: int
    bytes: int
    most_used: builtins.list[Memory]
    oldest: Memory | None
    newest: Memory | None
    searches: dict


class MemoryService:
    """Memories on the service's database (SQLite FTS5 or PostgreSQL full-text search).

    Every call acts for one `user` ("default" where there are no named users): a user sees,
    finds, recalls and forgets only their own memories; another user's id is unknown.
    `for_user()` gives a view bound to one user (what plugins get).

    `similarity`, when given, is a semantic scorer (an embedding engine) blended into search
    scores with weight `semantic_weight`; none exists yet, so by default ranking is full-text
    only. `bus` receives `memory.created` and `memory.deleted` events.
    """

    def __init__(
        self,
        db: Database,
        *,
        bus: EventBus | None = None,
        similarity: SimilarityScorer | None = None,
        semantic_weight: float = 0.5,
    ) -> None:
        self.db = db
        self.bus = bus
        self.similarity = similarity
        self.semantic_weight = semantic_weight
        self.search_stats = SearchStats()

    # --- writing ----------------------------------------------------------------------------

    async def add(
        self,
        content: str,
        *,
        user: str = "default",
        kind: str = "fact",
        source: str = "api",
        session_id: str | None = None,
        message_id: str | None = None,
        pinned: bool = False,
    ) -> Memory:
        """Store a memory. Raises InvalidInput for empty or over-long content, an unknown
        kind or a malformed source."""
        content = _check_content(content)
        _check_kind(kind)
        if not isinstance(source, str) or not _SOURCE.fullmatch(source):
            raise InvalidInput(f"source must match {_SOURCE.pattern}")
        async with self.db.session() as session:
            row = await store.add_memory(
                session,
                user=user,
                content=content,
                kind=kind,
                source=source,
                session_id=session_id,
                message_id=message_id,
                pinned=bool(pinned),
            )
        self._publish("memory.created", row)
        return row

    async def capture(
        self, text: str, *, user: str = "default", session_id: str | None = None, message_id: str | None = None
    ) -> Memory | None:
        """Store what a chat message asks to be remembered ("remember that …", "merk dir,
        dass …"; see memory/capture.py), with the message as provenance.

        Returns the new memory; the existing one when the same text is already stored (said
        twice, kept once); None when the message asks for nothing. Never raises on the
        message's content.
        """
        found = capture_rules.detect(text)
        if found is None:
            return None
        async with self._reading() as session:
            existing = await store.find_by_content(session, found.content, user=user)
        if existing is not None:
            return existing
        return await self.add(
            found.content, user=user, kind=found.kind, source="auto", session_id=session_id, message_id=message_id
        )

    async def delete(self, memory_id: int, *, user: str = "default") -> None:
        """Forget a memory. Raises MemoryNotFound for an unknown id."""
        if not _valid_id(memory_id):
            raise MemoryNotFound(f"no memory {memory_id!r}")
        async with self.db.session() as session:
            if not await store.delete_memory(session, memory_id, user=user):
                raise MemoryNotFound(f"no memory {memory_id!r}")
        if self.bus is not None:
            self.bus.publish("memory.deleted", {"id": memory_id, "user": user})

    async def mark_used(self, ids: Sequence[int], *, user: str = "default") -> int:
        """Count one use of each memory (use_count + 1, last_used_at = now); unknown ids are
        ignored. Returns how many were updated."""
        ids = sorted({int(i) for i in ids if _valid_id(i)})
        if not ids:
            return 0
        async with self.db.session() as session:
            return await store.mark_used(session, ids, user=user)

    # --- reading ----------------------------------------------------------------------------

    async def get(self, memory_id: int, *, user: str = "default") -> Memory:
        """Raises MemoryNotFound."""
        if not _valid_id(memory_id):
            raise MemoryNotFound(f"no memory {memory_id!r}")
        async with self._reading() as session:
            row = await store.get_memory(session, memory_id, user=user)
        if row is None:
            raise MemoryNotFound(f"no memory {memory_id!r}")
        return row

    async def list(
        self, *, user: str = "default", limit: int = 50, offset: int = 0, kind: str | None = None
    ) -> tuple[builtins.list[Memory], int]:
        """A page of memories, newest first, and the total. Raises InvalidInput."""
        _check_range("limit", limit, 1, MAX_LIST_LIMIT)
        _check_range("offset", offset, 0, MAX_ID)
        if kind is not None:
            _check_kind(kind)
        async with self._reading() as session:
            rows, total = await store.list_memories(session, user=user, limit=limit, offset=offset, kind=kind)
        return list(rows), total

    async def search(
        self,
        query: str,
        *,
        user: str = "default",
        limit: int = 10,
        kind: str | None = None,
        similarity: SimilarityScorer | None = None,
    ) -> builtins.list[tuple[Memory, float]]:
        """Memories matching a query, best first, each with a score in 0..1.

        Full-text relevance as described in memory/search.py (a query with broken search
        syntax is read as plain words). With a similarity scorer (this call's, else the
        service's), the score is blended: (1 - w) · text + w · similarity, over the
        full-text candidates — an embedding index that finds memories sharing no word with
        the query would add its own candidates here.

        Raises InvalidInput for an empty query, one over 1,000 characters, limit outside
        1..100 or an unknown kind.
        """
        parsed = fts.parse_query(query)
        _check_range("limit", limit, 1, MAX_SEARCH_LIMIT)
        if kind is not None:
            _check_kind(kind)
        started = time.perf_counter()
        try:
            async with self._reading() as session:
                hits = await self._ranked(session, parsed, user=user, limit=limit, kind=kind)
            return (await self._blend(parsed, hits, similarity or self.similarity))[:limit]
        finally:
            self.search_stats.record("search", time.perf_counter() - started)

    async def relevant(
        self,
        text: str,
        *,
        user: str = "default",
        limit: int = 3,
        min_score: float = 0.3,
        max_pinned: int = 5,
    ) -> builtins.list[tuple[Memory, float]]:
        """The memories to put in the prompt for a user message.

        The rule: every pinned memory (newest first, at most `max_pinned`, score 1.0) — the
        user pinned it to have it always in mind — then the `limit` best full-text matches for the
        message's significant words whose score is at least `min_score` (0..1: the share of
        words the message and the memory have in common, relative to the shorter; see
        memory/search.py). The message is read as plain words, never as search syntax. An
        empty message, or one made of stop words only, gets the pinned memories alone.
        Never raises on the message's content; does not count a use (call `mark_used` with
        the ids that went into the prompt).
        """
        started = time.perf_counter()
        try:
            query = fts.message_query(text or "")
            async with self._reading() as session:
                pinned = (
                    list(await store.pinned_memories(session, user=user, limit=max_pinned)) if max_pinned > 0 else []
                )
                chosen: builtins.list[tuple[Memory, float]] = [(row, 1.0) for row in pinned]
                if not query.terms or limit <= 0:
                    return chosen
                seen = {row.id for row in pinned}
                candidates = await self._ranked(session, query, user=user, limit=limit + len(seen), kind=None)
            ranked = await self._blend(query, candidates, self.similarity)
            fresh = [(row, score) for row, score in ranked if row.id not in seen and score >= min_score]
            return chosen + fresh[:limit]
        finally:
            self.search_stats.record("relevant", time.perf_counter() - started)

    async def _ranked(
        self, session: AsyncSession, query: fts.Query, *, user: str, limit: int, kind: str | None
    ) -> builtins.list[tuple[Memory, float, float]]:
        """(memory, word-overlap score, database relevance) for the full-text candidates."""
        # a few more candidates than asked for: the word-overlap score may reorder the top
        found = await fts.candidates(
            session, query, sqlite=self.db.is_sqlite, user=user, kind=kind, limit=max(limit * 2, 20)
        )
        if not found.ranked:
            return []
        return [(row, fts.overlap(query.terms, row.content, prefix=found.prefix), rank) for row, rank in found.ranked]

    async def _blend(
        self, query: fts.Query, hits: builtins.list[tuple[Memory, float, float]], similarity: SimilarityScorer | None
    ) -> builtins.list[tuple[Memory, float]]:
        """Blend in semantic similarity when there is a scorer; order by the final score."""
        scores = [score for _, score, _ in hits]
        if similarity is not None and hits:
            semantic = await similarity(query.text, [row.content for row, _, _ in hits])
            weight = self.semantic_weight
            scores = [
                (1 - weight) * text + weight * max(0.0, min(1.0, float(s)))
                for text, s in zip(scores, semantic, strict=True)
            ]
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], -hits[i][2], -hits[i][0].id))
        return [(hits[i][0], round(scores[i], 4)) for i in order]

    async def stats(self, *, user: str = "default") -> MemoryStats:
        """The user's counts per kind and source, size, most used (top 5), oldest and newest,
        and the searches this process served with their latency (all users': a count and
        timings, nothing of anyone's content)."""
        async with self._reading() as session:
            by_kind = await store.counts_by(session, Memory.kind, user=user)
            by_source = await store.counts_by(session, Memory.source, user=user)
            total, chars, size_bytes = await store.size(session, user=user, sqlite=self.db.is_sqlite)
            pinned = await store.count_pinned(session, user=user)
            most_used = list(await store.most_used(session, user=user, limit=5))
            oldest, newest = await store.oldest_and_newest(session, user=user)
        return MemoryStats(
            total=total,
            by_kind={kind: by_kind.get(kind, 0) for kind in KINDS} | by_kind,
            by_source=by_source,
            pinned=pinned,
            chars=chars,
            bytes=size_bytes,
            most_used=most_used,
            oldest=oldest,
            newest=newest,
            searches=self.search_stats.summary(),
        )

    def for_user(self, user: str) -> UserMemories:
        return UserMemories(self, user)

    def _reading(self) -> AsyncSession:
        """A session for reads only: nothing to commit, one round trip fewer per call."""
        return self.db.sessions()

    def _publish(self, event: str, row: Memory) -> None:
        if self.bus is not None:
            self.bus.publish(
                event,
                {
                    "id": row.id,
                    "user": row.user_id,
                    "kind": row.kind,
                    "source": row.source,
                    "content": row.content[:200],
                    "session_id": row.session_id,
                    "pinned": row.pinned,
                },
            )


class UserMemories:
    """The memory as one user sees it: MemoryService's calls with `user` filled in. Plugins
    get this in their Context, so a command cannot reach another user's memories by mistake."""

    def __init__(self, service: MemoryService, user: str) -> None:
        self.service = service
        self.user = user

    async def add(self, content: str, **options) -> Memory:
        return await self.service.add(content, user=self.user, **options)

    async def get(self, memory_id: int) -> Memory:
        return await self.service.get(memory_id, user=self.user)

    async def delete(self, memory_id: int) -> None:
        await self.service.delete(memory_id, user=self.user)

    async def list(self, **options) -> tuple[builtins.list[Memory], int]:
        return await self.service.list(user=self.user, **options)

    async def search(self, query: str, **options) -> builtins.list[tuple[Memory, float]]:
        return await self.service.search(query, user=self.user, **options)

    async def relevant(self, text: str, **options) -> builtins.list[tuple[Memory, float]]:
        return await self.service.relevant(text, user=self.user, **options)


# --- for the chat ----------------------------------------------------------------------------


def render_for_prompt(memories: Sequence[Memory]) -> str | None:
    """The memories as a block for the system prompt, or None when there are none."""
    if not memories:
        return None
    lines = [f"- ({row.kind}) {' '.join(row.content.split())}" for row in memories]
    return "What you know about the user from earlier conversations (use it when it helps):\n" + "\n".join(lines)


def encode_ids(memories: Sequence[Memory] | Sequence[int]) -> str | None:
    """The value for ChatMessage.memory_ids: a JSON list of ids, or None when none were used."""
    ids = [item if isinstance(item, int) else item.id for item in memories]
    return json.dumps(ids) if ids else None


def decode_ids(value: str | None) -> builtins.list[int]:
    """ChatMessage.memory_ids back as a list (an empty list for NULL or damaged values)."""
    if not value:
        return []
    try:
        ids = json.loads(value)
    except ValueError:
        return []
    return [i for i in ids if isinstance(i, int)] if isinstance(ids, list) else []


# --- checks ------------------------------------------------------------------------------------


def _check_content(content: str) -> str:
    if not isinstance(content, str) or not content.strip():
        raise InvalidInput("content must not be empty")
    content = content.strip()
    if len(content) > MAX_CONTENT_CHARS:
        raise InvalidInput(f"content is {len(content)} characters; the limit is {MAX_CONTENT_CHARS}")
    return content


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{name} must be an integer from {low} to {high}")


def _valid_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID
