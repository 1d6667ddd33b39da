"""The log service: captures every record of the process into `log_records`, answers queries,
and publishes records as `log.record` bus events while someone listens for them."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from jarvis.config import Settings
from jarvis.events import EventBus
from jarvis.logs.capture import ACCESS_LOGGER, CaptureHandler, LogWriter
from jarvis.logs.query import LogFilter, record_out, search, stats
from jarvis.logs.redact import Redactor
from jarvis.storage.db import Database
from jarvis.storage.tables import LogEntry

LOG_EVENT = "log.record"

# Several services may run in one process (tests, embedding); `jarvis.access` is set up by the
# first and put back as it was by the last.
_access_lock = threading.Lock()
_access_installs = 0
_access_before: tuple[int, bool] = (logging.NOTSET, True)


def configured_secrets(settings: Settings) -> list[str]:
    """The secret values `settings` holds, which must never appear in a stored record: the
    API key(s), the HF token, the OpenAI key, the database password."""
    secrets = [settings.api_key, settings.hf_token, settings.openai_api_key]
    try:
        secrets.append(make_url(settings.db_url).password)
    except Exception:  # an unparsable URL fails elsewhere, with a better message
        pass
    keys_file = getattr(settings, "api_keys_file", None)
    if keys_file:
        secrets.extend(_keys_in(Path(keys_file)))
    return [s for s in secrets if s]


def _keys_in(path: Path) -> list[str]:
    """The keys of a `JARVIS_API_KEYS_FILE` (JSON `{user: key}` or `user:key` lines).

    Read leniently: a file the security layer refuses never starts the server anyway.
    """
    try:
        text = path.read_text()
        if text.lstrip().startswith("{"):
            return [str(key).strip() for key in json.loads(text).values()]
        lines = (line.split(":", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
        return [parts[1].strip() for parts in lines if len(parts) == 2]
    except (OSError, ValueError, AttributeError):
        return []


class LogService:
    """Owns the capture handler and its writer.

    `start` installs the handler on the root logger (and on `jarvis.access`, which does not
    propagate: access records are stored, not printed twice); `close` removes it and writes
    what is still queued.
    """

    def __init__(
        self,
        db: Database,
        bus: EventBus | None = None,
        *,
        secrets: list[str] | tuple[str, ...] = (),
        retention_rows: int | None = 100_000,
        retention_days: float | None = 7.0,
        queue_size: int = 10_000,
        flush_seconds: float = 0.5,
        retention_seconds: float = 60.0,
    ) -> None:
        self.db = db
        self.bus = bus
        self.redactor = Redactor(secrets)
        self.handler = CaptureHandler(self.redactor, maxsize=queue_size)
        self.retention_rows = retention_rows
        self.retention_days = retention_days
        self.writer = LogWriter(
            db,
            self.handler,
            max_rows=retention_rows,
            max_age=timedelta(days=retention_days) if retention_days else None,
            on_rows=self._publish,
            flush_seconds=flush_seconds,
            retention_seconds=retention_seconds,
        )
        self._live: Counter[int] = Counter()
        self._live_min: int | None = None
        self._installed = False

    @classmethod
    async def start(cls, db: Database, bus: EventBus | None, settings: Settings, **options) -> LogService:
        """Capture from now on, with the retention limits and secrets of `settings`."""
        service = cls(
            db,
            bus,
            secrets=configured_secrets(settings),
            retention_rows=settings.log_retention_rows,
            retention_days=settings.log_retention_days,
            **options,
        )
        service.install()
        service.writer.start()
        return service

    def install(self) -> None:
        if self._installed:
            return
        global _access_installs, _access_before
        logging.getLogger().addHandler(self.handler)
        access = logging.getLogger(ACCESS_LOGGER)
        with _access_lock:
            if not _access_installs:
                _access_before = (access.level, access.propagate)
            _access_installs += 1
            access.setLevel(logging.INFO)  # stored whatever LOG_LEVEL says for the console
            access.propagate = False
            access.addHandler(self.handler)
        self._installed = True

    def uninstall(self) -> None:
        if not self._installed:
            return
        global _access_installs
        logging.getLogger().removeHandler(self.handler)
        access = logging.getLogger(ACCESS_LOGGER)
        with _access_lock:
            access.removeHandler(self.handler)
            _access_installs -= 1
            if not _access_installs:  # the last service of this process is gone: as it was
                access.setLevel(_access_before[0])
                access.propagate = _access_before[1]
        self._installed = False

    async def close(self) -> None:
        """Stop capturing; store what is still queued."""
        self.uninstall()
        await self.writer.stop()

    async def flush(self) -> int:
        """Store what is queued now (the writer does this every half second anyway)."""
        return await self.writer.flush()

    async def enforce_retention(self) -> int:
        return await self.writer.enforce_retention()

    @property
    def dropped(self) -> int:
        return self.handler.dropped

    async def query(self, where: LogFilter, *, limit: int = 100, offset: int = 0, before_id: int | None = None) -> dict:
        """A page of stored records, newest first (see `query.search`)."""
        async with self.db.session() as session:
            return await search(session, where, limit=limit, offset=offset, before_id=before_id)

    async def stats(self, window_seconds: int) -> dict:
        """Counts per level and source, error rate and access status classes over the last
        `window_seconds`, plus what capture dropped since start."""
        until = datetime.now(UTC)
        since = until - timedelta(seconds=window_seconds)
        async with self.db.session() as session:
            report = await stats(session, since=since, until=until)
            stored = await session.scalar(select(func.count()).select_from(LogEntry))
        return {
            "window_seconds": window_seconds,
            **report,
            "dropped": self.handler.dropped,
            "pending": self.handler.pending,
            "stored": stored,
            "retention": {"max_rows": self.retention_rows, "max_days": self.retention_days},
        }

    @contextmanager
    def live(self, min_level: int) -> Iterator[None]:
        """While inside, records at or above `min_level` are published as `log.record` events."""
        self._live[min_level] += 1
        self._live_min = min(self._live)
        try:
            yield
        finally:
            self._live[min_level] -= 1
            if not self._live[min_level]:
                del self._live[min_level]
            self._live_min = min(self._live) if self._live else None

    def _publish(self, rows: list[dict]) -> None:
        threshold = self._live_min
        if threshold is None or self.bus is None:
            return
        for row in rows:
            if row["levelno"] >= threshold:
                self.bus.publish(LOG_EVENT, record_out(row))
