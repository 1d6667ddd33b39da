"""Table definitions. Schema changes go through migrations in `migrations/versions`."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


_clock_lock = threading.Lock()
_last_now = datetime.min.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """Now in UTC, strictly increasing within this process.

    Messages are ordered by creation time; two written in the same microsecond
    must still keep their order.
    """
    global _last_now
    with _clock_lock:
        now = datetime.now(UTC)
        if now <= _last_now:
            now = _last_now + timedelta(microseconds=1)
        _last_now = now
        return now


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class ChatSession(Base):
    __tablename__ = "chat_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(200), default="New chat")
    user_id: Mapped[str] = mapped_column(String(100), default="default", index=True)
    model: Mapped[str | None] = mapped_column(String(200))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ChatMessage(Base):
    """One row per message; an assistant message is written when it starts and updated as it grows."""

    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_session_created", "session_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("chat_sessions.id", ondelete="CASCADE"), nullable=False
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    # complete | streaming | cancelled | disconnected | error | interrupted
    status: Mapped[str] = mapped_column(String(16), default="complete")
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    ttft_ms: Mapped[float | None] = mapped_column()
    duration_ms: Mapped[float | None] = mapped_column()
    # JSON list of the memory ids added to the prompt for this answer (assistant messages only)
    memory_ids: Mapped[str | None] = mapped_column(Text)
    # the replica writing a `streaming` answer (replicas.py): when it dies, another marks it interrupted
    replica_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PluginState(Base):
    """Whether a plugin is enabled; plugins not listed here use their default."""

    __tablename__ = "plugin_state"

    plugin_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    enabled: Mapped[bool] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Memory(Base):
    """One long-term memory. Full-text search lives beside it (migration 0003_memory):
    an FTS5 table `memories_fts` on SQLite, a generated `content_tsv` column on PostgreSQL;
    neither is mapped here because the ORM never writes them."""

    __tablename__ = "memories"
    __table_args__ = {"sqlite_autoincrement": True}  # ids of forgotten memories are never handed out again

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # whose memory it is: every read and search is within one user's (see migration 0004_memory_owner)
    user_id: Mapped[str] = mapped_column(String(100), default="default", server_default="default")
    kind: Mapped[str] = mapped_column(String(16), index=True)  # fact | preference | note | summary
    content: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32))  # api | command | auto | …
    # provenance, kept as written: a memory outlives the chat it came from
    session_id: Mapped[str | None] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    use_count: Mapped[int] = mapped_column(Integer, default=0, index=True)
    pinned: Mapped[bool] = mapped_column(default=False)  # partial index ix_memories_user_pinned_created_at


class LogEntry(Base):
    """One captured log record (see `jarvis.logs`), already redacted. Access records (source
    `jarvis.access`) carry method, path, status and duration_ms in `extra` and the status here."""

    __tablename__ = "log_records"
    __table_args__ = {"sqlite_autoincrement": True}  # paging cursors stay valid across retention

    # BIGINT on PostgreSQL (migration 0003_logs): ids are never reused and a busy service logs a lot
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    level: Mapped[str] = mapped_column(String(16))
    levelno: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(200))  # the logger name
    message: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(128), index=True)
    status: Mapped[int | None] = mapped_column(Integer)  # HTTP status of an access record
    extra: Mapped[str | None] = mapped_column(Text)  # JSON object


class Replica(Base):
    """A running server process on a shared PostgreSQL (replicas.py); its row goes when it is found dead."""

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DownloadJobRow(Base):
    """A download job as every replica on a shared PostgreSQL sees it (models/downloads/shared.py):
    written by the replica running it (`replica_id`); `stop` (`cancel` or `pause`) is another
    replica asking it to stop."""

    __tablename__ = "download_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_key: Mapped[str] = mapped_column(String(500))
    name: Mapped[str] = mapped_column(String(500))
    quantization: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    done_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    total_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    plan: Mapped[str] = mapped_column(Text)  # the Plan as JSON: what a replica taking the job over fetches
    replica_id: Mapped[str] = mapped_column(String(64), index=True)
    stop: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
