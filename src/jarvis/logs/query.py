"""Reading stored log records: filters, pages (newest first) and statistics over a window."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.errors import InvalidInput
from jarvis.logs.capture import ACCESS_LOGGER
from jarvis.storage.tables import LogEntry

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40, "CRITICAL": 50, "FATAL": 50}
MAX_TEXT = 500
MAX_LIMIT = 1000


def parse_level(value: str | None) -> int | None:
    """`"warning"` → 30 (names in any case, or a number 0..50); None stays None.

    Raises InvalidInput for anything else.
    """
    if value is None:
        return None
    name = value.strip().upper()
    if name in LEVELS:
        return LEVELS[name]
    if name.isdigit() and 0 <= int(name) <= 50:
        return int(name)
    raise InvalidInput(f"unknown log level {value!r}; expected DEBUG, INFO, WARNING, ERROR or CRITICAL")


def as_utc(moment: datetime | None) -> datetime | None:
    """A moment without a zone is taken as UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


@dataclass(frozen=True)
class LogFilter:
    """Which records: at or above `min_level`, from loggers whose name starts with `source`,
    created in [since, until], whose message contains `text` (any case)."""

    min_level: int | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    request_id: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        level: str | None = None,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        text: str | None = None,
        request_id: str | None = None,
    ) -> LogFilter:
        """Validated filters. Raises InvalidInput for an unknown level, since after until or a
        search text over 500 characters."""
        since, until = as_utc(since), as_utc(until)
        if since is not None and until is not None and since > until:
            raise InvalidInput("since must not be after until")
        if text is not None and len(text) > MAX_TEXT:
            raise InvalidInput(f"q must be at most {MAX_TEXT} characters")
        return cls(
            min_level=parse_level(level),
            source=source or None,
            since=since,
            until=until,
            text=text or None,
            request_id=request_id or None,
        )

    def conditions(self) -> list:
        where = []
        if self.min_level is not None:
            where.append(LogEntry.levelno >= self.min_level)
        if self.source:
            where.append(LogEntry.source.startswith(self.source, autoescape=True))
        if self.since is not None:
            where.append(LogEntry.created_at >= self.since)
        if self.until is not None:
            where.append(LogEntry.created_at <= self.until)
        if self.text:
            where.append(func.lower(LogEntry.message).contains(self.text.lower(), autoescape=True))
        if self.request_id:
            where.append(LogEntry.request_id == self.request_id)
        return where


def record_out(row: LogEntry | dict) -> dict:
    """A stored record (or a row about to be stored) as the API shows it."""
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    created = get("created_at")
    extra = get("extra")
    return {
        "id": get("id"),
        "created_at": created.isoformat() if created else None,
        "level": get("level"),
        "levelno": get("levelno"),
        "source": get("source"),
        "message": get("message"),
        "request_id": get("request_id"),
        "extra": json.loads(extra) if extra else None,
    }


async def search(
    session: AsyncSession, where: LogFilter, *, limit: int = 100, offset: int = 0, before_id: int | None = None
) -> dict:
    """One page, newest first. `before_id` continues from the last page's `next_before_id`;
    `total` counts every match of the filters (the cursor aside)."""
    conditions = where.conditions()
    statement = select(LogEntry).where(*conditions)
    if before_id is not None:
        statement = statement.where(LogEntry.id < before_id)
    statement = statement.order_by(LogEntry.id.desc()).offset(offset).limit(limit + 1)
    rows = list(await session.scalars(statement))
    more = len(rows) > limit
    rows = rows[:limit]
    total = await session.scalar(select(func.count()).select_from(LogEntry).where(*conditions))
    return {
        "records": [record_out(row) for row in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_before_id": rows[-1].id if more and rows else None,
    }


async def stats(session: AsyncSession, *, since: datetime, until: datetime, top_sources: int = 50) -> dict:
    """Counts per level and source, the error rate and access status classes in [since, until]."""
    window = (LogEntry.created_at >= since, LogEntry.created_at <= until)
    # one grouped query for levels and sources, so their sums agree while records keep arriving
    groups = (
        await session.execute(
            select(LogEntry.source, LogEntry.level, LogEntry.levelno, func.count())
            .where(*window)
            .group_by(LogEntry.source, LogEntry.level, LogEntry.levelno)
        )
    ).all()
    levels: dict[str, int] = {}
    per_source: dict[str, int] = {}
    errors = 0
    for source, level, levelno, n in groups:
        levels[level] = levels.get(level, 0) + n
        per_source[source] = per_source.get(source, 0) + n
        if levelno >= logging.ERROR:
            errors += n
    total = sum(levels.values())
    ranked = sorted(per_source.items(), key=lambda item: (-item[1], item[0]))
    sources = dict(ranked[:top_sources])
    other = total - sum(sources.values())

    by_status = (
        await session.execute(
            select(LogEntry.status, func.count())
            .where(*window, LogEntry.source == ACCESS_LOGGER, LogEntry.status.is_not(None))
            .group_by(LogEntry.status)
        )
    ).all()
    classes = {"1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}
    for status, n in by_status:
        if status is None:
            continue
        key = f"{status // 100}xx"
        classes[key] = classes.get(key, 0) + n
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "total": total,
        "levels": levels,
        "sources": sources,
        "other_sources": other,  # records from sources beyond the top ones listed
        "errors": errors,
        "error_rate": round(errors / total, 6) if total else 0.0,
        "access": {"total": sum(classes.values()), "status": classes},
    }
