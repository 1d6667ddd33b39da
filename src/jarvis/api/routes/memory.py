"""`/api/memory/…`: long-term memories — list, add, forget, search, statistics."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from jarvis.api.deps import UserDep
from jarvis.api.schemas import Request as StrictRequest
from jarvis.memory.search import MAX_QUERY_CHARS
from jarvis.memory.service import (
    MAX_CONTENT_CHARS,
    MAX_ID,
    MAX_LIST_LIMIT,
    MAX_SEARCH_LIMIT,
    MemoryService,
)
from jarvis.storage.tables import Memory

router = APIRouter(prefix="/api/memory", tags=["memory"])
# Every route acts on the asking user's memories only; another user's id answers 404.

Kind = Literal["fact", "preference", "note", "summary"]


def _memory(request: Request) -> MemoryService:
    return request.app.state.services.memory


MemoryDep = Annotated[MemoryService, Depends(_memory)]


# --- wire models ------------------------------------------------------------------------------


class MemoryCreate(StrictRequest):
    content: Annotated[str, Field(min_length=1, max_length=MAX_CONTENT_CHARS)]
    kind: Kind = "fact"
    pinned: bool = False


class MemorySearch(StrictRequest):
    query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)]
    limit: Annotated[int, Field(ge=1, le=MAX_SEARCH_LIMIT)] = 10
    kind: Kind | None = None


class MemoryOut(BaseModel):
    id: int
    kind: str
    content: str
    source: str
    session_id: str | None = None
    message_id: str | None = None
    created_at: datetime
    last_used_at: datetime | None = None
    use_count: int
    pinned: bool

    @classmethod
    def of(cls, row: Memory) -> MemoryOut:
        return cls.model_validate(row, from_attributes=True)


class MemoryPage(BaseModel):
    memories: list[MemoryOut]
    total: int
    limit: int
    offset: int


class MemoryHit(MemoryOut):
    score: float  # 0..1, see jarvis/memory/search.py


class SearchOut(BaseModel):
    results: list[MemoryHit]
    query: str
    took_ms: float


class MemorySize(BaseModel):
    chars: int
    bytes: int


class SearchCounters(BaseModel):
    served: int
    by_origin: dict[str, int]
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None
    window: int  # the latest searches the percentiles cover (this process, since it started)


class StatsOut(BaseModel):
    total: int
    by_kind: dict[str, int]
    by_source: dict[str, int]
    pinned: int
    size: MemorySize
    most_used: list[MemoryOut]
    oldest: MemoryOut | None
    newest: MemoryOut | None
    searches: SearchCounters


# --- routes ---------------------------------------------------------------------------------


@router.get("", response_model=MemoryPage)
async def list_memories(
    memory: MemoryDep,
    user: UserDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    kind: Kind | None = None,
) -> MemoryPage:
    """Memories, newest first."""
    rows, total = await memory.list(user=user, limit=limit, offset=offset, kind=kind)
    return MemoryPage(memories=[MemoryOut.of(row) for row in rows], total=total, limit=limit, offset=offset)


@router.post("", response_model=MemoryOut, status_code=201)
async def add_memory(body: MemoryCreate, memory: MemoryDep, user: UserDep) -> MemoryOut:
    row = await memory.add(body.content, user=user, kind=body.kind, source="api", pinned=body.pinned)
    return MemoryOut.of(row)


@router.get("/stats", response_model=StatsOut)
async def memory_stats(memory: MemoryDep, user: UserDep) -> StatsOut:
    """Counts per kind and source, size, most used, oldest and newest, searches served."""
    stats = await memory.stats(user=user)
    return StatsOut(
        total=stats.total,
        by_kind=stats.by_kind,
        by_source=stats.by_source,
        pinned=stats.pinned,
        size=MemorySize(chars=stats.chars, bytes=stats.bytes),
        most_used=[MemoryOut.of(row) for row in stats.most_used],
        oldest=MemoryOut.of(stats.oldest) if stats.oldest else None,
        newest=MemoryOut.of(stats.newest) if stats.newest else None,
        searches=SearchCounters(**stats.searches),
    )


@router.post("/search", response_model=SearchOut)
async def search_memories(body: MemorySearch, memory: MemoryDep, user: UserDep) -> SearchOut:
    """Full-text search, best first. A query with broken search syntax is read as plain words."""
    started = time.perf_counter()
    hits = await memory.search(body.query, user=user, limit=body.limit, kind=body.kind)
    took_ms = round((time.perf_counter() - started) * 1000, 3)
    results = [MemoryHit(**MemoryOut.of(row).model_dump(), score=score) for row, score in hits]
    return SearchOut(results=results, query=body.query, took_ms=took_ms)


@router.get("/{memory_id}", response_model=MemoryOut)
async def get_memory(memory_id: Annotated[int, Path(ge=1, le=MAX_ID)], memory: MemoryDep, user: UserDep) -> MemoryOut:
    return MemoryOut.of(await memory.get(memory_id, user=user))


@router.delete("/{memory_id}")
async def delete_memory(memory_id: Annotated[int, Path(ge=1, le=MAX_ID)], memory: MemoryDep, user: UserDep) -> dict:
    await memory.delete(memory_id, user=user)
    return {"id": memory_id, "deleted": True}
