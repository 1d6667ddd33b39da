"""Settings, read from the environment and a `.env` file.

Built once by `create_app` (or the CLI) and passed down; nothing here does I/O at import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from platformdirs import user_data_dir
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Bundled and instruction-tuned (chat template with tools); `gemma3:270m`, also bundled, is a
# faster base model. See jarvis.models.bundled.
DEFAULT_MODEL = "qwen2.5-coder:0.5b"


def loopback_host(host: str) -> str:
    """`host` as a URL writes it, a bind-all address (0.0.0.0, ::, none) as loopback: where a
    client on this machine reaches a server bound there."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"[{host}]" if ":" in host else host  # an IPv6 literal


class Upstream(BaseModel):
    """One server of the inference fleet (an entry of `JARVIS_UPSTREAMS`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://[^/?#\s]+", description="the API's base URL (an OpenAI one ends in /v1)")
    kind: Literal["openai", "ollama"]
    key: str | None = Field(None, repr=False)  # a Bearer token (openai)
    # the models it serves: names or glob filters (`qwen*`); unset: what its model list says
    models: list[Annotated[str, Field(min_length=1)]] | None = Field(None, min_length=1)
    name: str | None = Field(None, min_length=1, max_length=64)

    @property
    def label(self) -> str:
        """Its name, else its URL without any user or password in it."""
        if self.name:
            return self.name
        parts = urlsplit(self.url)
        return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


class Settings(BaseSettings):
    """Everything the service can be configured with.

    The seed's names (`API_HOST`, `API_PORT`, `JARVIS_PORT`, `CORS_ORIGINS`, `LOG_LEVEL`,
    `HUGGINGFACE_TOKEN`) keep working beside the `JARVIS_` ones.
    """

    # Only the alias names are read from the environment (`PORT` or `DATABASE_URL` are someone
    # else's); code builds Settings by field name through `Settings.build`.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    @classmethod
    def build(cls, *, env_file: str | None = ".env", **fields) -> Settings:
        """Settings with some fields given by their Python names (the rest from the environment)."""
        by_alias: dict[str, Any] = {}
        for name, value in fields.items():
            alias = cls.model_fields[name].validation_alias
            first = alias.choices[0] if isinstance(alias, AliasChoices) else name
            by_alias[first if isinstance(first, str) else name] = value
        return cls(_env_file=env_file, **by_alias)

    host: str = Field("127.0.0.1", validation_alias=AliasChoices("JARVIS_HOST", "API_HOST"))
    # JARVIS_PORT overrides API_PORT: AliasChoices takes the first one present.
    port: int = Field(5050, ge=1, le=65535, validation_alias=AliasChoices("JARVIS_PORT", "API_PORT"))
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("JARVIS_CORS_ORIGINS", "CORS_ORIGINS")
    )
    log_level: str = Field("INFO", validation_alias=AliasChoices("JARVIS_LOG_LEVEL", "LOG_LEVEL"))

    data_dir: Path = Field(
        default_factory=lambda: Path(user_data_dir("jarvis", appauthor=False)),
        validation_alias=AliasChoices("JARVIS_DATA_DIR"),
    )
    database_url: str | None = Field(None, validation_alias=AliasChoices("JARVIS_DATABASE_URL"))
    # Models live in the data dir unless put elsewhere (a bigger disk, or shared between instances).
    models_path: Path | None = Field(None, validation_alias=AliasChoices("JARVIS_MODELS_DIR"))

    default_model: str = Field(DEFAULT_MODEL, validation_alias=AliasChoices("JARVIS_DEFAULT_MODEL"))
    # When false the server starts without loading a model (first request loads it).
    load_on_start: bool = Field(True, validation_alias=AliasChoices("JARVIS_LOAD_ON_START"))
    n_ctx: int = Field(4096, ge=256, validation_alias=AliasChoices("JARVIS_N_CTX"))
    n_threads: int | None = Field(None, ge=1, validation_alias=AliasChoices("JARVIS_N_THREADS"))
    # answers the loaded model generates at once (slots of JARVIS_N_CTX tokens each, batched
    # together); unset: 4, fewer where their context cache would not fit half the free memory
    parallel: int | None = Field(None, ge=1, le=64, validation_alias=AliasChoices("JARVIS_PARALLEL"))
    default_max_tokens: int = Field(512, ge=1, validation_alias=AliasChoices("JARVIS_MAX_TOKENS"))
    # the most tokens one answer may take, whatever a client asks for (None: no cap)
    max_tokens_limit: int | None = Field(None, ge=1, validation_alias=AliasChoices("JARVIS_MAX_TOKENS_LIMIT"))
    max_message_chars: int = Field(100_000, ge=1, validation_alias=AliasChoices("JARVIS_MAX_MESSAGE_CHARS"))
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, validation_alias=AliasChoices("JARVIS_MAX_BODY_BYTES"))
    max_ws_frame_bytes: int = Field(1024 * 1024, ge=1024, validation_alias=AliasChoices("JARVIS_MAX_WS_FRAME_BYTES"))
    max_connections_per_client: int = Field(
        1000, ge=1, validation_alias=AliasChoices("JARVIS_MAX_CONNECTIONS_PER_CLIENT")
    )
    # which plugin tools a chat offers the model: auto (every tool to remote engines; to the
    # embedded model only tools the message suggests), always, never (chat/tool_choice.py)
    chat_tools: Literal["auto", "always", "never"] = Field("auto", validation_alias=AliasChoices("JARVIS_CHAT_TOOLS"))
    # answers waiting for a free slot beyond those generating
    max_queue: int = Field(64, ge=0, validation_alias=AliasChoices("JARVIS_MAX_QUEUE"))

    max_concurrent_downloads: int = Field(2, ge=1, le=16, validation_alias=AliasChoices("JARVIS_MAX_DOWNLOADS"))
    # the most ranged connections per file: a transfer starts with two and adds more while they help
    download_connections: int = Field(16, ge=1, le=16, validation_alias=AliasChoices("JARVIS_DOWNLOAD_CONNECTIONS"))
    # seconds without a byte before a connection counts as stalled and is retried
    download_stall_seconds: float = Field(20.0, gt=0, validation_alias=AliasChoices("JARVIS_DOWNLOAD_STALL_SECONDS"))
    download_backoff_seconds: float = Field(0.5, gt=0, validation_alias=AliasChoices("JARVIS_DOWNLOAD_BACKOFF_SECONDS"))
    # disk space a download must leave free, beyond what running downloads have reserved
    disk_reserve_mb: int = Field(512, ge=0, validation_alias=AliasChoices("JARVIS_DISK_RESERVE_MB"))
    # the memory a pulled model may need (weights, context cache, runtime; models/fit.py): a pull
    # that needs more is refused before it starts. Unset: this machine's RAM; 0: no check
    memory_limit_mb: int | None = Field(None, ge=0, validation_alias=AliasChoices("JARVIS_MEMORY_LIMIT_MB"))

    hf_token: str | None = Field(None, validation_alias=AliasChoices("HUGGINGFACE_TOKEN", "HF_TOKEN"))
    hf_endpoint: str = Field("https://huggingface.co", validation_alias=AliasChoices("HF_ENDPOINT"))
    ollama_registry: str = Field("https://registry.ollama.ai", validation_alias=AliasChoices("JARVIS_OLLAMA_REGISTRY"))
    ollama_host: str | None = Field(None, validation_alias=AliasChoices("OLLAMA_HOST"))
    openai_base_url: str | None = Field(None, validation_alias=AliasChoices("JARVIS_OPENAI_BASE_URL"))
    openai_api_key: str | None = Field(None, validation_alias=AliasChoices("JARVIS_OPENAI_API_KEY"))
    # more servers for `openai/` and `ollama/` models, besides the two above (a JSON list)
    upstreams: Annotated[list[Upstream], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("JARVIS_UPSTREAMS")
    )
    api_key: str | None = Field(None, validation_alias=AliasChoices("JARVIS_API_KEY"))
    # several users: a file of `user:key` lines (or a JSON object {"user": "key"})
    api_keys_file: Path | None = Field(None, validation_alias=AliasChoices("JARVIS_API_KEYS_FILE"))
    # users (names from the keys file) who may manage the server: enable and disable plugins,
    # read the logs, follow log records and everyone's events. Unset: the JARVIS_API_KEY user.
    admin_users: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("JARVIS_ADMIN_USERS")
    )
    # serve a non-loopback address with no key: only when someone says so on purpose
    insecure: bool = Field(False, validation_alias=AliasChoices("JARVIS_INSECURE"))
    # host names (besides localhost, 127.0.0.1, ::1) a loopback server answers to
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("JARVIS_ALLOWED_HOSTS")
    )
    allow_insecure_urls: bool = Field(False, validation_alias=AliasChoices("JARVIS_ALLOW_INSECURE_URLS"))
    # events between replicas go over Redis pub/sub when set (else PostgreSQL's LISTEN/NOTIFY)
    redis_url: str | None = Field(None, validation_alias=AliasChoices("JARVIS_REDIS_URL"))
    # this process's name among the replicas (unset: host-pid-random, new at each start)
    replica_id: str | None = Field(None, max_length=64, validation_alias=AliasChoices("JARVIS_REPLICA_ID"))
    # a bearer token that may read /metrics (besides the API keys), for a Prometheus scraper
    metrics_token: str | None = Field(None, validation_alias=AliasChoices("JARVIS_METRICS_TOKEN"))
    # stored log records (GET /api/logs): at most this many rows, none older than this many days
    log_retention_rows: int = Field(100_000, ge=1, validation_alias=AliasChoices("JARVIS_LOG_RETENTION_ROWS"))
    log_retention_days: float = Field(7.0, gt=0, validation_alias=AliasChoices("JARVIS_LOG_RETENTION_DAYS"))

    @field_validator("cors_origins", "allowed_hosts", "admin_users", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("upstreams", mode="before")
    @classmethod
    def _parse_upstreams(cls, value: object) -> object:
        if isinstance(value, str | bytes):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ValueError(f"JARVIS_UPSTREAMS must be a JSON list of upstreams: {exc}") from None
        return value

    @field_validator("upstreams")
    @classmethod
    def _unique_upstreams(cls, value: list[Upstream]) -> list[Upstream]:
        labels = [upstream.label for upstream in value]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"JARVIS_UPSTREAMS names each upstream once; repeated: {', '.join(repeated)}")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"):
            raise ValueError(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not {value!r}")
        return level

    @field_validator("data_dir", "models_path")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def db_url(self) -> str:
        """The database URL: `JARVIS_DATABASE_URL`, or SQLite in the data dir."""
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'jarvis.db'}"

    @property
    def models_dir(self) -> Path:
        return self.models_path or self.data_dir / "models"

    @property
    def disk_reserve_bytes(self) -> int:
        return self.disk_reserve_mb * 1024 * 1024

    @property
    def server_url(self) -> str:
        """Where a client on this machine reaches this server (the `jarvis` commands, the start-up log)."""
        return f"http://{loopback_host(self.host)}:{self.port}"

    @property
    def fleet(self) -> list[Upstream]:
        """Every upstream: `OLLAMA_HOST` and `JARVIS_OPENAI_BASE_URL` first, then `JARVIS_UPSTREAMS`."""
        # The two single-server settings are taken as they always were (not checked here).
        single = []
        if self.ollama_url:
            single.append(Upstream.model_construct(url=self.ollama_url, kind="ollama", name="OLLAMA_HOST"))
        if self.openai_base_url:
            single.append(
                Upstream.model_construct(
                    url=self.openai_base_url, kind="openai", key=self.openai_api_key, name="JARVIS_OPENAI_BASE_URL"
                )
            )
        return single + self.upstreams

    @property
    def ollama_url(self) -> str | None:
        """`OLLAMA_HOST` as a URL (Ollama accepts a bare `host:port`)."""
        if not self.ollama_host:
            return None
        parts = urlsplit(self.ollama_host if "://" in self.ollama_host else f"http://{self.ollama_host}")
        host = loopback_host(parts.hostname or "")
        port = parts.port or (11434 if "://" not in self.ollama_host else None)  # Ollama's default port
        netloc = f"{host}:{port}" if port else host
        return f"{parts.scheme}://{netloc}{parts.path}".rstrip("/")
