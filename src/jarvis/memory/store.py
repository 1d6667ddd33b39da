"""Queries over the `memories` table. Each function takes an open AsyncSession; callers own
the transaction. Every query is within one user's memories (`user`): another user's memory
is as absent as a missing one. Full-text search is in `search.py`."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import CursorResult, LargeBinary, Result, cast, delete, func, insert, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.storage.tables import Memory, utcnow


async def add_memory(
    db: AsyncSession,
    *,
    user: str,
    content: str,
    kind: str,
    source: str,
    session_id: str | None = None,
    message_id: str | None = None,
    pinned: bool = False,
) -> Memory:
    row = Memory(
        user_id=user,
        kind=kind,
        content=content,
        source=source,
        session_id=session_id,
        message_id=message_id,
        pinned=pinned,
        use_count=0,
        created_at=utcnow(),
    )
    db.add(row)
    await db.flush()
    return row


async def add_memories(db: AsyncSession, rows: Iterable[dict]) -> int:
    """Many memories in one statement (imports, benchmarks); each dict holds Memory's fields
    (`user_id` "default" unless given)."""
    values = [
        {
            "user_id": "default",
            "use_count": 0,
            "pinned": False,
            "session_id": None,
            "message_id": None,
            "created_at": utcnow(),
            **row,
        }
        for row in rows
    ]
    if values:
        await db.execute(insert(Memory), values)
    return len(values)


async def get_memory(db: AsyncSession, memory_id: int, *, user: str) -> Memory | None:
    row = await db.get(Memory, memory_id)
    return row if row is not None and row.user_id == user else None


async def list_memories(
    db: AsyncSession, *, user: str, limit: int, offset: int, kind: str | None = None
) -> tuple[Sequence[Memory], int]:
    """Newest first."""
    count = select(func.count()).select_from(Memory).where(Memory.user_id == user)
    query = (
        select(Memory)
        .where(Memory.user_id == user)
        .order_by(Memory.created_at.desc(), Memory.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if kind:
        count = count.where(Memory.kind == kind)
        query = query.where(Memory.kind == kind)
    total = await db.scalar(count)
    rows = await db.scalars(query)
    return rows.all(), int(total or 0)


async def delete_memory(db: AsyncSession, memory_id: int, *, user: str) -> bool:
    result = await db.execute(delete(Memory).where(Memory.id == memory_id, Memory.user_id == user))
    return _affected(result) > 0


async def mark_used(db: AsyncSession, ids: Sequence[int], *, user: str, when: datetime | None = None) -> int:
    if not ids:
        return 0
    result = await db.execute(
        update(Memory)
        .where(Memory.id.in_(list(ids)), Memory.user_id == user)
        .values(use_count=Memory.use_count + 1, last_used_at=when or utcnow())
    )
    return _affected(result)


async def find_by_content(db: AsyncSession, content: str, *, user: str) -> Memory | None:
    """The oldest memory with exactly this text (a capture said twice is stored once)."""
    query = select(Memory).where(Memory.content == content, Memory.user_id == user)
    return await db.scalar(query.order_by(Memory.id).limit(1))


async def pinned_memories(db: AsyncSession, *, user: str, limit: int, kind: str | None = None) -> Sequence[Memory]:
    query = (
        select(Memory)
        .where(Memory.pinned == true(), Memory.user_id == user)
        .order_by(Memory.created_at.desc())
        .limit(limit)
    )
    if kind:
        query = query.where(Memory.kind == kind)
    return (await db.scalars(query)).all()


# --- statistics ---------------------------------------------------------------------------


async def counts_by(db: AsyncSession, column, *, user: str) -> dict[str, int]:
    rows = await db.execute(select(column, func.count()).where(Memory.user_id == user).group_by(column))
    return {str(key): int(count) for key, count in rows.all()}


async def size(db: AsyncSession, *, user: str, sqlite: bool) -> tuple[int, int, int]:
    """(memories, characters, UTF-8 bytes) over the user's memories."""
    if sqlite:
        # SQLite's length() counts characters on text and bytes on a blob
        byte_length = func.length(cast(Memory.content, LargeBinary))
    else:
        byte_length = func.octet_length(Memory.content)
    row = (
        await db.execute(
            select(
                func.count(),
                func.coalesce(func.sum(func.length(Memory.content)), 0),
                func.coalesce(func.sum(byte_length), 0),
            ).where(Memory.user_id == user)
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


async def count_pinned(db: AsyncSession, *, user: str) -> int:
    query = select(func.count()).select_from(Memory).where(Memory.pinned == true(), Memory.user_id == user)
    return int(await db.scalar(query) or 0)


async def most_used(db: AsyncSession, *, user: str, limit: int) -> Sequence[Memory]:
    query = (
        select(Memory)
        .where(Memory.use_count > 0, Memory.user_id == user)
        .order_by(Memory.use_count.desc(), Memory.last_used_at.desc(), Memory.id)
        .limit(limit)
    )
    return (await db.scalars(query)).all()


async def oldest_and_newest(db: AsyncSession, *, user: str) -> tuple[Memory | None, Memory | None]:
    mine = select(Memory).where(Memory.user_id == user)
    oldest = await db.scalar(mine.order_by(Memory.created_at, Memory.id).limit(1))
    newest = await db.scalar(mine.order_by(Memory.created_at.desc(), Memory.id.desc()).limit(1))
    return oldest, newest


def _affected(result: Result) -> int:
    """Rows an UPDATE or DELETE touched (its cursor result's rowcount)."""
    return typing.cast(CursorResult, result).rowcount
