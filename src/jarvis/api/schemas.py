"""Wire models: what clients send and what they get back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from jarvis.api.ranges import MaxTokens, ModelName, Temperature, TopP
from jarvis.memory.service import decode_ids
from jarvis.storage.tables import ChatMessage, ChatSession


class Request(BaseModel):
    # Strict: `"stream": "yes"` or `"temperature": "hot"` is the client's mistake, not ours to guess.
    model_config = ConfigDict(strict=True, populate_by_name=True)


class SessionCreate(Request):
    title: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    model: ModelName | None = None
    system_prompt: Annotated[str, Field(max_length=20_000)] | None = None


class SessionUpdate(Request):
    """`PATCH /api/chat/sessions/{id}`: rename, change the model or the system prompt (at least
    one; an empty `system_prompt` removes it)."""

    title: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    model: ModelName | None = None
    system_prompt: Annotated[str, Field(max_length=20_000)] | None = None

    @model_validator(mode="after")
    def _something(self) -> SessionUpdate:
        if self.title is None and self.model is None and self.system_prompt is None:
            raise ValueError("give at least one of title, model, system_prompt")
        return self


class MessageCreate(Request):
    """`POST /api/chat/messages` (seed 1), `sessionId` or `session_id`."""

    message: str
    session_id: str | None = Field(None, validation_alias=AliasChoices("sessionId", "session_id"), max_length=64)
    model: ModelName | None = None
    stream: bool = False
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None
    top_p: TopP | None = None
    seed: int | None = None


class ChatV1Request(MessageCreate):
    """`POST /api/v1/chat/` (seed 2)."""


class MessageOut(BaseModel):
    id: str
    session_id: str
    role: str
    content: str
    status: str
    finish_reason: str | None = None
    error: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    duration_ms: float | None = None
    memory_ids: list[int] = []  # the long-term memories added to the prompt of this answer
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ChatMessage) -> MessageOut:
        data = {name: getattr(row, name) for name in cls.model_fields if name != "memory_ids"}
        return cls(**data, memory_ids=decode_ids(getattr(row, "memory_ids", None)))


class SessionOut(BaseModel):
    id: str
    title: str
    model: str | None
    system_prompt: str | None
    created_at: datetime
    updated_at: datetime
    message_count: int = 0

    @classmethod
    def of(cls, row: ChatSession, *, message_count: int = 0) -> SessionOut:
        return cls(
            id=row.id,
            title=row.title,
            model=row.model,
            system_prompt=row.system_prompt,
            created_at=row.created_at,
            updated_at=row.updated_at,
            message_count=message_count,
        )


class SessionDetail(SessionOut):
    messages: list[MessageOut]


class SessionPage(BaseModel):
    sessions: list[SessionOut]
    total: int
    limit: int
    offset: int


class ReplyOut(MessageOut):
    """The stored assistant message, with the seed's `sessionId` spelling too."""

    sessionId: str
    user_message_id: str


class ChatV1Response(BaseModel):
    response: str
    model: str
    session_id: str
    message_id: str
    status: str
    timestamp: datetime
    usage: dict


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


# --- WebSocket frames from the client --------------------------------------------


class WsChatMessage(Request):
    """Seed 1: `chat_message` answered with one `chat_response`."""

    type: Literal["chat_message"]
    message: str
    session_id: str | None = Field(None, validation_alias=AliasChoices("sessionId", "session_id"), max_length=64)
    model: ModelName | None = None
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None


class WsChat(WsChatMessage):
    """Seed 2: `chat`, streamed (`stream_start/chunk/end`) or not (`response`)."""

    type: Literal["chat"]  # type: ignore[assignment]
    stream: bool = True


class WsPing(Request):
    type: Literal["ping"]


class WsHistory(Request):
    type: Literal["history"]
    session_id: str | None = Field(None, validation_alias=AliasChoices("sessionId", "session_id"), max_length=64)


class WsCancel(Request):
    type: Literal["cancel"]


class WsSubscribe(Request):
    """Live events on this socket (as `/api/events`): `events` are types or prefixes
    (`download`, `model.loaded`), all when absent; `log_level` adds log records at or above it.
    A second `subscribe` replaces the first."""

    type: Literal["subscribe"]
    events: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=50)] | None = None
    log_level: Annotated[str, Field(min_length=1, max_length=16)] | None = None


class WsUnsubscribe(Request):
    type: Literal["unsubscribe"]


WsFrame = Annotated[
    WsChatMessage | WsChat | WsPing | WsHistory | WsCancel | WsSubscribe | WsUnsubscribe,
    Field(discriminator="type"),
]


class ModelKeyRequest(Request):
    model_key: Annotated[str, Field(min_length=1, max_length=500)]


class CancelRequest(ModelKeyRequest):
    # true: stop but keep what was fetched, so pulling again resumes (what `jarvis pull` does on Ctrl-C)
    keep_partial: bool = False


class DownloadRequest(ModelKeyRequest):
    quantization: Annotated[str, Field(min_length=1, max_length=32)] | None = None
