"""Queries over the tables. Each function takes an open AsyncSession; callers own the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import ColumnElement, CursorResult, Result, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.storage.tables import ChatMessage, ChatSession, Replica, utcnow

INTERRUPTED = "the server stopped while this answer was being written"


async def create_session(
    db: AsyncSession,
    *,
    session_id: str | None = None,
    user_id: str = "default",
    title: str | None = None,
    model: str | None = None,
    system_prompt: str | None = None,
) -> ChatSession:
    now = utcnow()
    row = ChatSession(
        title=title or "New chat",
        user_id=user_id,
        model=model,
        system_prompt=system_prompt,
        created_at=now,
        updated_at=now,
    )
    if session_id:
        row.id = session_id
    db.add(row)
    await db.flush()
    return row


async def get_session(db: AsyncSession, session_id: str) -> ChatSession | None:
    return await db.get(ChatSession, session_id)


async def list_sessions(
    db: AsyncSession, *, user_id: str, limit: int, offset: int, text: str | None = None
) -> tuple[Sequence[ChatSession], int]:
    mine = ChatSession.user_id == user_id
    if text:
        pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        in_messages = select(ChatMessage.session_id).where(func.lower(ChatMessage.content).like(pattern, escape="\\"))
        mine = mine & (func.lower(ChatSession.title).like(pattern, escape="\\") | ChatSession.id.in_(in_messages))
    total = await db.scalar(select(func.count()).select_from(ChatSession).where(mine))
    rows = await db.scalars(
        select(ChatSession)
        .where(mine)
        .order_by(ChatSession.updated_at.desc(), ChatSession.id)
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), int(total or 0)


async def message_counts(db: AsyncSession, session_ids: Sequence[str]) -> dict[str, int]:
    if not session_ids:
        return {}
    rows = await db.execute(
        select(ChatMessage.session_id, func.count())
        .where(ChatMessage.session_id.in_(session_ids))
        .group_by(ChatMessage.session_id)
    )
    return {session_id: count for session_id, count in rows.all()}


async def delete_session(db: AsyncSession, session_id: str) -> bool:
    await db.execute(delete(ChatMessage).where(ChatMessage.session_id == session_id))
    result = await db.execute(delete(ChatSession).where(ChatSession.id == session_id))
    return _affected(result) > 0


async def delete_messages(db: AsyncSession, message_ids: Sequence[str]) -> None:
    if message_ids:
        await db.execute(delete(ChatMessage).where(ChatMessage.id.in_(message_ids)))


async def touch_session(db: AsyncSession, session_id: str) -> None:
    await db.execute(update(ChatSession).where(ChatSession.id == session_id).values(updated_at=utcnow()))


async def add_message(db: AsyncSession, *, session_id: str, role: str, content: str, **fields) -> ChatMessage:
    now = utcnow()
    row = ChatMessage(session_id=session_id, role=role, content=content, created_at=now, updated_at=now, **fields)
    db.add(row)
    await db.flush()
    return row


async def update_message(db: AsyncSession, message_id: str, **fields) -> None:
    await db.execute(
        update(ChatMessage).where(ChatMessage.id == message_id).values(**{"updated_at": utcnow(), **fields})
    )


async def list_messages(db: AsyncSession, session_id: str) -> Sequence[ChatMessage]:
    rows = await db.scalars(
        select(ChatMessage).where(ChatMessage.session_id == session_id).order_by(ChatMessage.created_at, ChatMessage.id)
    )
    return rows.all()


async def mark_unfinished_interrupted(db: AsyncSession) -> int:
    """Messages still `streaming` when the service starts were cut off by a crash."""
    result = await db.execute(
        update(ChatMessage).where(ChatMessage.status == "streaming").values(status="interrupted", error=INTERRUPTED)
    )
    return _affected(result)


async def interrupt_answers_of(db: AsyncSession, replica_ids: Sequence[str], *, orphans: bool = False) -> int:
    """Answers still `streaming` whose replica is dead (`replica_ids`) are marked interrupted; with
    `orphans` also those of no replica still registered (an older version's, or a replica's
    whose row is gone). Returns how many."""
    dead: ColumnElement[bool] = ChatMessage.replica_id.in_(list(replica_ids))
    if orphans:
        registered = select(Replica.id)
        dead = or_(dead, ChatMessage.replica_id.is_(None), ChatMessage.replica_id.not_in(registered))
    result = await db.execute(
        update(ChatMessage)
        .where(ChatMessage.status == "streaming", dead)
        .values(status="interrupted", error=INTERRUPTED, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return _affected(result)


def _affected(result: Result) -> int:
    """Rows an UPDATE or DELETE touched (its cursor result's rowcount)."""
    return cast(CursorResult, result).rowcount
