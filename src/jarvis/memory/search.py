"""Full-text search over memories: turning what a person typed into an FTS query, running it
on SQLite FTS5 or PostgreSQL full-text search, and scoring the hits.

How a query is read:

* Plain words (the usual case, and every chat message): the significant words — stop words
  of English and German dropped, unless nothing else is left; at most MAX_TERMS of them, or
  the MESSAGE_TERMS longest of a chat message — are looked up, and a memory holding any of
  them is a candidate. Candidates holding more of the words come first, then those the
  database finds more relevant (bm25 on SQLite, ts_rank on PostgreSQL), so rarer words weigh
  more. If no memory holds any of the words, each word of three or more letters is tried
  again as a prefix, inflection stripped ("cats" finds "cat", "Katzen" finds "Katze").
* A query using search syntax (quotes, `*`, parentheses, upper-case AND/OR/NOT/NEAR) is
  first run as written (FTS5 syntax on SQLite, `websearch_to_tsquery` on PostgreSQL). When it
  is not valid syntax, or finds nothing, it is searched as plain words as above. A syntax
  error is never the client's problem.
* Bounded work: a word found in very many memories contributes only part of its matches
  (see RANK_BUDGET below); rare words always count in full.

The score is backend-independent so that one threshold works on both databases and on a
store of ten memories as on one of a million (bm25 alone gives almost zero when a store
holds a single memory): the share of significant words the query and the memory have in
common, relative to the shorter of the two (an overlap coefficient, 0..1), with a light
suffix stemming so that "cats"/"cat" or "Katzen"/"Katze" count as the same word. Ties are
broken by the database's relevance.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Float, column, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.errors import InvalidInput
from jarvis.storage.tables import Memory

MAX_QUERY_CHARS = 1_000
MAX_TERMS = 16
MESSAGE_TERMS = 12
PREFIX_MIN_CHARS = 3
MAX_CANDIDATES = 400

_WORD = re.compile(r"[^\W_]+")
_SYNTAX = re.compile(r"[\"*()^]|\b(?:AND|OR|NOT|NEAR)\b")
_OPERATORS = {"AND", "OR", "NOT", "NEAR"}

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "being",
        "but",
        "by",
        "can",
        "could",
        "d",
        "did",
        "do",
        "does",
        "doing",
        "don",
        "for",
        "from",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "just",
        "ll",
        "m",
        "me",
        "mine",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "our",
        "ours",
        "out",
        "over",
        "please",
        "re",
        "s",
        "shall",
        "she",
        "should",
        "so",
        "some",
        "such",
        "t",
        "tell",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "to",
        "too",
        "up",
        "us",
        "ve",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "whose",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "aber",
        "als",
        "am",
        "an",
        "auch",
        "auf",
        "aus",
        "bei",
        "bin",
        "bist",
        "bitte",
        "da",
        "dann",
        "das",
        "dass",
        "daß",
        "dein",
        "deine",
        "deinem",
        "deinen",
        "deiner",
        "dem",
        "den",
        "denn",
        "der",
        "des",
        "dich",
        "die",
        "dir",
        "doch",
        "du",
        "ein",
        "eine",
        "einem",
        "einen",
        "einer",
        "eines",
        "er",
        "es",
        "etwas",
        "euch",
        "euer",
        "für",
        "hast",
        "hat",
        "hatte",
        "ich",
        "ihm",
        "ihn",
        "ihr",
        "im",
        "in",
        "ist",
        "ja",
        "kann",
        "kannst",
        "mal",
        "man",
        "mein",
        "meine",
        "meinem",
        "meinen",
        "meiner",
        "mich",
        "mir",
        "mit",
        "nach",
        "nein",
        "nicht",
        "noch",
        "nun",
        "ob",
        "oder",
        "schon",
        "sein",
        "sich",
        "sie",
        "sind",
        "so",
        "über",
        "um",
        "und",
        "uns",
        "unser",
        "vom",
        "von",
        "vor",
        "war",
        "waren",
        "was",
        "weil",
        "wenn",
        "wer",
        "wie",
        "wir",
        "wird",
        "wo",
        "zu",
        "zum",
        "zur",
    ]
)
_SUFFIXES = ("ing", "ed", "es", "en", "er", "e", "s")


def tokens(text_: str) -> list[str]:
    """Words of a text, lower-cased the way both databases lower-case them."""
    return _WORD.findall(unicodedata.normalize("NFC", text_).lower())


@lru_cache(maxsize=65_536)
def fold(word: str) -> str:
    """A word without case or diacritics ("Müller" → "muller", "Straße" → "strasse")."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """A light, language-neutral suffix strip of a folded word (for scoring)."""
    return strip_suffixes(fold(word))


def strip_suffixes(word: str) -> str:
    """ "katzen" → "katz", "called" → "call", "prefers" → "pref"; keeps at least three letters."""
    for _ in range(2):
        for suffix in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
        else:
            break
    return word


def significant(words: Iterable[str], *, limit: int = MAX_TERMS) -> tuple[str, ...]:
    """Distinct words in order, stop words dropped unless nothing else is left."""
    distinct = list(dict.fromkeys(words))
    kept = [word for word in distinct if fold(word) not in STOPWORDS] or distinct
    return tuple(kept[:limit])


@dataclass(frozen=True)
class Query:
    text: str  # as typed, trimmed
    terms: tuple[str, ...]  # significant words, lower-cased
    syntax: bool  # uses search syntax: try it as written first


def parse_query(query: str) -> Query:
    """Check and read a search query.

    Raises InvalidInput when it is empty or longer than MAX_QUERY_CHARS.
    """
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("query must not be empty")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
    stripped = query.strip()
    words = [word for word in _WORD.findall(unicodedata.normalize("NFC", stripped)) if word not in _OPERATORS]
    return Query(stripped, significant(word.lower() for word in words), bool(_SYNTAX.search(stripped)))


def message_query(message: str, *, max_chars: int = 4_000) -> Query:
    """A chat message read as plain words (never as search syntax): its head only, and of a
    long message's words the MESSAGE_TERMS longest (long words tend to be the specific ones;
    each word costs a lookup)."""
    head = message[:max_chars]
    words = significant(tokens(head), limit=1_000)
    if len(words) > MESSAGE_TERMS:
        keep = set(sorted(words, key=len, reverse=True)[:MESSAGE_TERMS])
        words = tuple(word for word in words if word in keep)[:MESSAGE_TERMS]
    return Query(head.strip(), words, syntax=False)


# --- scoring ------------------------------------------------------------------------------


def overlap(terms: Sequence[str], content: str, *, prefix: bool = False) -> float:
    """Share of significant words in common, relative to the shorter side (0..1)."""
    if not terms:
        return 0.0
    memory_words = significant(tokens(content), limit=10_000)
    if not memory_words:
        return 0.0
    stems = {stem(word) for word in memory_words}
    folded = [fold(word) for word in memory_words] if prefix else []
    found = 0
    for term in terms:
        root = stem(term)
        loose = prefix and len(root) >= PREFIX_MIN_CHARS
        if root in stems or (loose and any(word.startswith(root) for word in folded)):
            found += 1
    return round(found / min(len(terms), len(memory_words)), 4)


# --- the database side --------------------------------------------------------------------


def prefixes(terms: Sequence[str]) -> list[str]:
    """The words as prefixes for the loose second try: inflection stripped ("katzen" →
    "katz"), shorter than three letters dropped (they would match half the store)."""
    roots = (strip_suffixes(term) for term in terms)
    return list(dict.fromkeys(root for root in roots if len(root) >= PREFIX_MIN_CHARS))


# Ranking every memory that shares a common word with the query would cost time in
# proportion to the store (bm25 and ts_rank read each match's statistics; PostgreSQL reads
# each matching row). So each word is looked up on its own, and a word found in more
# memories than its share of RANK_BUDGET contributes only that many of its matches — the
# newest on SQLite, the first the index yields on PostgreSQL (ordering a word's matches there
# would mean reading them all). Rare words, the ones that tell memories apart, always count
# in full. Relevance adds up over words (exactly for bm25), so the per-word relevances summed
# per memory rank the OR query. One more lookup, unranked and so cheap, takes memories
# holding every word, so that a memory sharing all the words is found even when each word
# is common. Candidates are ordered by how many of the words they hold, then by relevance.
RANK_BUDGET = 500
MIN_PER_WORD = 50
_FIELDS = ", ".join(f"memories.{field.name}" for field in Memory.__table__.columns)  # in the order .columns() maps


def _sqlite_part(param: str, *, every: bool, kind: bool, parser: str) -> str:
    # the owner is checked inside each word's lookup: another user's memories must not use up
    # the word's share of RANK_BUDGET
    join = "JOIN memories AS m ON m.id = memories_fts.rowid"
    where_kind = "AND m.user_id = :user" + (" AND m.kind = :kind" if kind else "")
    rank = "NULL" if every else "-bm25(memories_fts)"
    return (
        f"SELECT * FROM (SELECT memories_fts.rowid AS id, {rank} AS r, {int(every)} AS every_word "
        f"FROM memories_fts {join} WHERE memories_fts MATCH :{param} {where_kind} "
        f"ORDER BY memories_fts.rowid DESC LIMIT :{'cap_all' if every else 'cap'})"
    )


def _postgres_part(param: str, *, every: bool, kind: bool, parser: str) -> str:
    where_kind = "AND user_id = :user" + (" AND kind = :kind" if kind else "")
    query = f"{parser}('simple', :{param})"
    rank = "NULL::real" if every else f"ts_rank(s.content_tsv, {query})"
    return (
        f"SELECT s.id, {rank} AS r, {int(every)} AS every_word FROM "
        f"(SELECT id, content_tsv FROM memories WHERE content_tsv @@ {query} {where_kind} "
        f"LIMIT :{'cap_all' if every else 'cap'}) AS s"
    )


@lru_cache(maxsize=512)
def _select(n_words: int, *, every: bool, sqlite: bool, kind: bool, parser: str):
    """The ORM statement for a lookup shape; built once per shape so SQLAlchemy's compiled
    cache applies (a text() rebuilt on every call would be compiled on every call)."""
    sql = _statement(n_words, every=every, sqlite=sqlite, kind=kind, parser=parser)
    textual = text(sql).columns(*Memory.__table__.columns, column("rank", Float))
    return select(Memory, textual.selected_columns.rank).from_statement(textual)


def _statement(n_words: int, *, every: bool, sqlite: bool, kind: bool, parser: str) -> str:
    """The per-word lookups and the every-word lookup, merged per memory, with the rows."""
    part = _sqlite_part if sqlite else _postgres_part
    parts = [part(f"w{i}", every=False, kind=kind, parser=parser) for i in range(n_words)]
    parts += [part("every", every=True, kind=kind, parser=parser)] if every else []
    larger = "MAX" if sqlite else "GREATEST"
    ranked = (
        f"SELECT id, COALESCE(SUM(r), 0) AS rank, {larger}(COUNT(r), MAX(every_word) * :n_words) AS words "
        f"FROM ({' UNION ALL '.join(parts)}) AS hits GROUP BY id "
        "ORDER BY words DESC, rank DESC, id DESC LIMIT :limit"
    )
    return (
        f"SELECT {_FIELDS}, ranked.rank FROM ({ranked}) AS ranked "
        "JOIN memories ON memories.id = ranked.id ORDER BY ranked.words DESC, ranked.rank DESC, ranked.id DESC"
    )


async def _lookup(
    session: AsyncSession,
    *,
    words: Sequence[str],
    every: str | None,
    sqlite: bool,
    user: str,
    kind: str | None,
    limit: int,
    parser: str = "to_tsquery",
) -> list[tuple[Memory, float]]:
    """The user's memories matching any of `words` (or all of them, `every`), best first."""
    params: dict = {f"w{i}": word for i, word in enumerate(words)}
    params |= {
        "user": user,
        "limit": limit,
        "cap": max(MIN_PER_WORD, RANK_BUDGET // max(1, len(words))),
        "cap_all": RANK_BUDGET,
        "n_words": len(words),
    }
    if every is not None:
        params["every"] = every
    if kind:
        params["kind"] = kind
    statement = _select(len(words), every=every is not None, sqlite=sqlite, kind=bool(kind), parser=parser)
    rows = await session.execute(statement, params)
    return [(memory, float(rank)) for memory, rank in rows.all()]


def word_expressions(terms: Sequence[str], *, sqlite: bool, prefix: bool = False) -> tuple[list[str], str | None]:
    """One FTS5 / to_tsquery expression per word, each quoted so that no word is read as
    syntax, and one for all the words together (None for a single word)."""
    if prefix:
        terms = prefixes(terms)
    if sqlite:
        star = "*" if prefix else ""
        words = [f'"{term.replace(chr(34), chr(34) * 2)}"{star}' for term in terms]
        joined = " AND ".join(words)
    else:
        star = ":*" if prefix else ""
        words = [f"'{term.replace(chr(92), chr(92) * 2).replace(chr(39), chr(39) * 2)}'{star}" for term in terms]
        joined = " & ".join(words)
    return words, (joined if len(words) > 1 else None)


@dataclass(frozen=True)
class Candidates:
    ranked: list[tuple[Memory, float]]  # (memory, database relevance), best first
    prefix: bool  # found by the prefix retry


async def candidates(
    session: AsyncSession, query: Query, *, sqlite: bool, user: str, kind: str | None, limit: int
) -> Candidates:
    """The user's memories matching a query, best first, by the rules in this module's docstring."""
    limit = min(limit, MAX_CANDIDATES)
    if not sqlite:
        # Each word's lookup stops after its share of matches; without this the planner may
        # take a sequential scan for that, which reads the whole table for a word nobody used.
        await session.execute(text("SET LOCAL enable_seqscan = off"))
    if query.syntax:
        try:
            parser = "websearch_to_tsquery"  # PostgreSQL's reading of what people type; it never fails
            found = await _lookup(
                session, words=[query.text], every=None, sqlite=sqlite, user=user, kind=kind, limit=limit, parser=parser
            )
        except DBAPIError:  # not valid FTS5 syntax: read as plain words below
            found = []
        if found:
            return Candidates(found, prefix=False)
    if not query.terms:
        return Candidates([], prefix=False)
    words, every = word_expressions(query.terms, sqlite=sqlite, prefix=False)
    found = await _lookup(session, words=words, every=every, sqlite=sqlite, user=user, kind=kind, limit=limit)
    if found:
        return Candidates(found, prefix=False)
    words, every = word_expressions(query.terms, sqlite=sqlite, prefix=True)
    if not words:
        return Candidates([], prefix=True)
    return Candidates(
        await _lookup(session, words=words, every=every, sqlite=sqlite, user=user, kind=kind, limit=limit), prefix=True
    )
