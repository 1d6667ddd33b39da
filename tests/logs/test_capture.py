"""Capture and storage without the web app: the handler never blocks, the writer stores in
bulk, retention trims, live records reach the bus."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from jarvis.events import EventBus
from jarvis.logs import ACCESS_LOGGER, LOG_EVENT, LogFilter, LogService, request_id_var
from jarvis.logs.capture import CaptureHandler
from jarvis.logs.redact import Redactor
from jarvis.storage.tables import LogEntry
from tests.logs.conftest import marker


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def _record(name: str, level: int, message: str, *, created: datetime | None = None) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, message, (), None)
    if created is not None:
        record.created = created.timestamp()
    return record


def test_a_full_queue_drops_and_counts_instead_of_waiting():
    handler = CaptureHandler(Redactor(), maxsize=1000)
    logger = _logger(f"jarvis.tests.{marker()}", handler)
    for i in range(10_000):  # nobody drains: every call must still return at once
        logger.error("record %d with Authorization: Bearer secret-%d", i, i)
    assert handler.pending == 1000
    assert handler.dropped == 9000
    rows = handler.take(5000)
    assert len(rows) == 1000 and rows[0]["message"].startswith("record 0 ")
    assert "secret-0" not in rows[0]["message"]


def test_logging_from_many_threads_while_the_handler_lock_is_held():
    """emit takes no handler lock: a thread holding it cannot stall the event loop's logging."""
    handler = CaptureHandler(Redactor(), maxsize=100_000)
    logger = _logger(f"jarvis.tests.{marker()}", handler)
    handler.acquire()
    try:
        threads = [threading.Thread(target=lambda: [logger.info("x") for _ in range(500)]) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads)
    finally:
        handler.release()
    assert handler.pending == 4000 and handler.dropped == 0


def test_what_is_not_captured():
    handler = CaptureHandler(Redactor())
    skipped = [
        _record("jarvis.logs", logging.ERROR, "the writer itself"),
        _record("jarvis.logs.capture", logging.WARNING, "the writer itself"),
        _record("sqlalchemy.engine.Engine", logging.INFO, "INSERT INTO log_records"),
        _record("aiosqlite", logging.DEBUG, "executing"),
        _record("asyncpg.pool", logging.DEBUG, "acquire"),
        _record("uvicorn.access", logging.INFO, '127.0.0.1 - "GET /?api_key=x HTTP/1.1" 200'),
    ]
    kept = [
        _record("jarvis.logsearch", logging.INFO, "not the writer"),
        _record("sqlalchemy.pool", logging.WARNING, "pool overflow"),
        _record("jarvis.models", logging.DEBUG, "debug of the service"),
    ]
    for record in skipped + kept:
        handler.handle(record)
    assert [row["message"] for row in handler.take(100)] == [r.msg for r in kept]


def test_rows_carry_the_request_id_and_access_fields():
    handler = CaptureHandler(Redactor())
    token = request_id_var.set("req-123")
    try:
        handler.handle(_record("jarvis.chat", logging.WARNING, "inside a request"))
    finally:
        request_id_var.reset(token)
    access = _record("jarvis.access", logging.INFO, "GET / 200 1.0 ms")
    for key, value in {"method": "GET", "path": "/", "status": 200, "duration_ms": 1.0, "request_id": "abc"}.items():
        setattr(access, key, value)
    handler.handle(access)
    handler.handle(_record("jarvis.chat", logging.INFO, "outside"))
    inside, access_row, outside = handler.take(10)
    assert inside["request_id"] == "req-123" and outside["request_id"] is None
    assert access_row["request_id"] == "abc" and access_row["status"] == 200
    assert '"method": "GET"' in access_row["extra"] and "request_id" not in access_row["extra"]


def test_install_and_uninstall_leave_logging_as_they_found_it():
    root, access = logging.getLogger(), logging.getLogger(ACCESS_LOGGER)

    def state():
        return access.level, access.propagate, list(access.handlers), list(root.handlers)

    before = state()
    first, second = LogService(None), LogService(None)
    first.install()
    second.install()
    assert first.handler in root.handlers and second.handler in access.handlers
    assert access.propagate is False and access.level == logging.INFO  # stored, not printed twice
    first.uninstall()
    assert access.propagate is False and first.handler not in root.handlers
    second.uninstall()
    second.uninstall()  # twice is harmless
    assert state() == before


async def _count(db) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(LogEntry))


async def test_writer_stores_in_bulk_and_retention_trims(database):
    service = LogService(database, None, retention_rows=50, retention_days=1)
    name = f"jarvis.tests.{marker()}"
    old = datetime.now(UTC) - timedelta(days=2)
    for i in range(30):
        service.handler.handle(_record(name, logging.INFO, f"old {i}", created=old))
    for i in range(80):
        service.handler.handle(_record(name, logging.INFO, f"new {i}"))
    assert await service.flush() == 110
    assert await _count(database) == 110

    assert await service.enforce_retention() == 60  # 30 too old, then 30 more beyond the newest 50
    page = await service.query(LogFilter(source=name), limit=1000)
    assert page["total"] == 50
    assert [r["message"] for r in page["records"]] == [f"new {i}" for i in reversed(range(30, 80))]
    assert await service.enforce_retention() == 0


async def test_a_stopped_writer_loses_nothing_it_had_room_for(database):
    service = LogService(database, None, queue_size=500)
    name = f"jarvis.tests.{marker()}"
    logger = _logger(name, service.handler)
    for i in range(2000):
        logger.warning("burst %d", i)
    assert service.dropped == 1500
    await service.flush()
    page = await service.query(LogFilter(source=name), limit=1)
    assert page["total"] == 500


async def test_running_service_captures_the_root_logger_and_publishes_live_records(database):
    bus = EventBus()
    service = LogService(database, bus, flush_seconds=0.05)
    service.install()
    service.writer.start()
    name = f"jarvis.tests.{marker()}"
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    try:
        async with bus.subscribe() as queue:
            logger.error("before anyone listens")
            await asyncio.sleep(0.3)
            assert queue.empty()  # nobody asked for log records: none published
            with service.live(logging.ERROR):
                logger.warning("below the level")
                logger.error("at the level")
                event = await asyncio.wait_for(queue.get(), 10)
            logger.critical("after the listener left")
            await asyncio.sleep(0.3)
            assert queue.empty()
    finally:
        await service.close()
    assert event.type == LOG_EVENT
    assert event.data["message"] == "at the level" and event.data["source"] == name
    assert isinstance(event.data["id"], int) and event.data["level"] == "ERROR"
    page = await service.query(LogFilter(source=name), limit=10)
    assert [r["message"] for r in page["records"]] == [
        "after the listener left",
        "at the level",
        "below the level",
        "before anyone listens",
    ]
