"""Capture log records without blocking: a handler that queues, a writer that stores in bulk.

`CaptureHandler.emit` runs in whatever thread logged (usually the event loop): it formats and
redacts the record and puts a row on a bounded thread-safe queue; when the queue is full the
record is dropped and counted, never waited for. `LogWriter` drains the queue from an asyncio
task every half second, inserts the rows in one statement, and enforces retention.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import CursorResult, Table, delete, insert, select

from jarvis.logs.redact import Redactor
from jarvis.storage.db import Database
from jarvis.storage.tables import LogEntry

log = logging.getLogger(__name__)

# The id of the HTTP request or WebSocket being served; the access middleware sets it, and
# every record logged while serving it carries it.
request_id_var: ContextVar[str | None] = ContextVar("jarvis_request_id", default=None)

OWN_LOGGER = "jarvis.logs"  # the capture machinery itself: never captured (it would feed itself)
ACCESS_LOGGER = "jarvis.access"
# Chatter of the drivers the writer uses: below WARNING it would record every insert the writer does.
_QUIET_BELOW_WARNING = ("sqlalchemy", "aiosqlite", "asyncpg")
# uvicorn's own access line repeats (with the raw query string) what jarvis.access records.
_IGNORED = ("uvicorn.access",)

MAX_MESSAGE_CHARS = 32_000
MAX_EXTRA_CHARS = 8_000
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_id",
    "taskName",
    "color_message",
}
_exception_formatter = logging.Formatter()


def _is_own(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


class CaptureHandler(logging.Handler):
    """Turns log records into redacted rows on a bounded queue; never blocks the caller."""

    def __init__(self, redactor: Redactor, *, maxsize: int = 10_000, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.redactor = redactor
        self.queue: queue.Queue[dict] = queue.Queue(maxsize=maxsize)
        self._count_lock = threading.Lock()
        self._dropped = 0

    @property
    def dropped(self) -> int:
        """Records lost because the queue was full (or a record could not be formatted)."""
        return self._dropped

    def count_dropped(self, n: int = 1) -> None:
        with self._count_lock:
            self._dropped += n

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: the queue is thread-safe, and a lock here could make the event
        # loop wait for another thread that is busy formatting.
        result = self.filter(record)
        if isinstance(result, logging.LogRecord):
            record = result
        if result:
            self.emit(record)
        return bool(result)

    def wanted(self, record: logging.LogRecord) -> bool:
        name = record.name
        if _is_own(name, OWN_LOGGER) or name in _IGNORED:
            return False
        quiet = record.levelno < logging.WARNING and any(_is_own(name, prefix) for prefix in _QUIET_BELOW_WARNING)
        return not quiet

    def emit(self, record: logging.LogRecord) -> None:
        if not self.wanted(record):
            return
        try:
            row = self.row(record)
        except Exception:  # a record that cannot even be formatted must not break the caller
            self.count_dropped()
            return
        try:
            self.queue.put_nowait(row)
        except queue.Full:
            self.count_dropped()

    def row(self, record: logging.LogRecord) -> dict:
        """The redacted row stored for `record` (columns of `log_records`)."""
        redact = self.redactor
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")}
        extra_text = None
        status = None
        if extra:
            clean = redact.value(extra)
            extra_text = json.dumps(clean, default=str, ensure_ascii=False)
            if len(extra_text) > MAX_EXTRA_CHARS:
                extra_text = json.dumps({"truncated": True, "keys": sorted(map(str, extra))[:50]})
            value = extra.get("status")
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
                status = value
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        return {
            "created_at": datetime.fromtimestamp(record.created, UTC),
            "level": record.levelname[:16],
            "levelno": record.levelno,
            "source": record.name[:200],
            "message": redact.text(_message(record))[:MAX_MESSAGE_CHARS],
            "request_id": redact.text(str(request_id))[:128] if request_id else None,
            "status": status,
            "extra": extra_text,
        }

    def take(self, limit: int) -> list[dict]:
        """Up to `limit` queued rows, oldest first."""
        rows: list[dict] = []
        while len(rows) < limit:
            try:
                rows.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return rows

    @property
    def pending(self) -> int:
        return self.queue.qsize()


def _message(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except Exception:  # bad %-args: keep what was given
        text = f"{record.msg!r} % {record.args!r}"
    if record.exc_info and not record.exc_text:
        record.exc_text = _exception_formatter.formatException(record.exc_info)
    if record.exc_text:
        text = f"{text}\n{record.exc_text}"
    if record.stack_info:
        text = f"{text}\n{_exception_formatter.formatStack(record.stack_info)}"
    return text


class LogWriter:
    """Drains a `CaptureHandler` into `log_records` and keeps the table within its limits."""

    def __init__(
        self,
        db: Database,
        handler: CaptureHandler,
        *,
        max_rows: int | None,
        max_age: timedelta | None,
        on_rows: Callable[[list[dict]], None] | None = None,
        flush_seconds: float = 0.5,
        retention_seconds: float = 60.0,
        batch: int = 2_000,
    ) -> None:
        self.db = db
        self.handler = handler
        self.max_rows = max_rows
        self.max_age = max_age
        self.on_rows = on_rows
        self.flush_seconds = flush_seconds
        self.retention_seconds = retention_seconds
        self.batch = batch
        self.written = 0
        self.failed = 0
        self.trimmed = 0
        self._task: asyncio.Task | None = None
        self._stop = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._last_warning = 0.0

    def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="jarvis-log-writer")

    async def stop(self) -> None:
        """Stop the task after one last flush."""
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._guarded(self.flush)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        next_trim = 0.0  # at start, then every `retention_seconds`
        while not self._stop.is_set():
            if time.monotonic() >= next_trim:
                await self._guarded(self.enforce_retention)
                next_trim = time.monotonic() + self.retention_seconds
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.flush_seconds)
            except TimeoutError:
                pass
            await self._guarded(self.flush)

    async def _guarded(self, work) -> None:
        try:
            await work()
        except Exception as exc:  # the database is gone or locked: keep capturing, say so now and then
            now = time.monotonic()
            if now - self._last_warning > 60:
                self._last_warning = now
                log.warning("log writer: %s failed: %s", work.__name__, exc)

    async def flush(self) -> int:
        """Store everything queued so far; returns how many rows were written."""
        total = 0
        async with self._flush_lock:
            # bounded, so a flood of records cannot keep one flush going forever
            for _ in range(max(1, self.handler.queue.maxsize // self.batch + 1)):
                rows = self.handler.take(self.batch)
                if not rows:
                    break
                try:
                    ids = await self._insert(rows)
                except Exception:
                    self.failed += len(rows)
                    self.handler.count_dropped(len(rows))
                    ids = [None] * len(rows)
                    self._publish(rows, ids)
                    raise
                total += len(rows)
                self.written += len(rows)
                self._publish(rows, ids)
        return total

    async def _insert(self, rows: list[dict]) -> list[int | None]:
        table = cast(Table, LogEntry.__table__)
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        async with self.db.session() as session:
            result = await session.execute(statement, rows)
            return list(result.scalars())

    def _publish(self, rows: list[dict], ids: list[int | None]) -> None:
        if self.on_rows is None:
            return
        for row, row_id in zip(rows, ids, strict=True):
            row["id"] = row_id
        self.on_rows(rows)

    async def enforce_retention(self, *, now: datetime | None = None) -> int:
        """Delete rows older than `max_age` and all but the newest `max_rows`; returns how many."""
        table = cast(Table, LogEntry.__table__)
        deleted = 0
        async with self.db.session() as session:
            if self.max_age is not None:
                cutoff = (now or datetime.now(UTC)) - self.max_age
                result = cast(CursorResult, await session.execute(delete(table).where(table.c.created_at < cutoff)))
                deleted += result.rowcount or 0
            if self.max_rows is not None:
                boundary = await session.scalar(
                    select(table.c.id).order_by(table.c.id.desc()).offset(self.max_rows).limit(1)
                )
                if boundary is not None:
                    result = cast(CursorResult, await session.execute(delete(table).where(table.c.id <= boundary)))
                    deleted += result.rowcount or 0
        self.trimmed += deleted
        return deleted
