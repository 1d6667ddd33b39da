"""Settings: defaults, the seed's variable names beside the JARVIS_ ones, and `.env` files."""

from __future__ import annotations

from pathlib import Path

import pytest
from platformdirs import user_data_dir
from pydantic import AliasChoices, ValidationError
from sqlalchemy.engine import make_url

from jarvis.config import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No setting from the shell that runs the tests, and no `.env` in the working directory."""
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        for env_name in [name.upper(), *(alias.choices if isinstance(alias, AliasChoices) else [])]:
            monkeypatch.delenv(str(env_name), raising=False)
    monkeypatch.chdir(tmp_path)


def settings() -> Settings:
    return Settings(_env_file=None)


def test_defaults():
    s = settings()
    assert s.host == "127.0.0.1"
    assert s.port == 5050
    assert s.cors_origins == []
    assert s.log_level == "INFO"
    assert s.data_dir == Path(user_data_dir("jarvis", appauthor=False))
    assert s.models_dir == s.data_dir / "models"
    assert s.database_url is None
    assert s.default_model == "qwen2.5-coder:0.5b"
    assert s.load_on_start is True
    assert s.hf_token is None
    assert s.hf_endpoint == "https://huggingface.co"
    assert s.ollama_registry == "https://registry.ollama.ai"
    assert s.ollama_host is None and s.ollama_url is None
    assert s.openai_base_url is None and s.openai_api_key is None
    assert s.api_key is None
    assert s.allow_insecure_urls is False


def test_building_settings_touches_no_disk(monkeypatch, tmp_path):
    monkeypatch.setenv("JARVIS_DATA_DIR", str(tmp_path / "not-yet"))
    s = settings()
    assert s.data_dir == tmp_path / "not-yet"
    assert not s.data_dir.exists()


def test_seed_names_for_host_and_port(monkeypatch):
    monkeypatch.setenv("API_HOST", "0.0.0.0")
    monkeypatch.setenv("API_PORT", "6000")
    s = settings()
    assert (s.host, s.port) == ("0.0.0.0", 6000)


def test_jarvis_port_overrides_api_port(monkeypatch):
    monkeypatch.setenv("API_PORT", "6000")
    monkeypatch.setenv("JARVIS_PORT", "6001")
    assert settings().port == 6001


def test_jarvis_host_overrides_api_host(monkeypatch):
    monkeypatch.setenv("API_HOST", "0.0.0.0")
    monkeypatch.setenv("JARVIS_HOST", "127.0.0.2")
    assert settings().host == "127.0.0.2"


@pytest.mark.parametrize("value", ["0", "65536", "http"])
def test_port_must_be_a_port(monkeypatch, value):
    monkeypatch.setenv("API_PORT", value)
    with pytest.raises(ValidationError):
        settings()


def test_cors_origins_is_a_comma_list(monkeypatch):
    monkeypatch.setenv("CORS_ORIGINS", "http://localhost:5000, http://localhost:5173,,")
    assert settings().cors_origins == ["http://localhost:5000", "http://localhost:5173"]


def test_jarvis_cors_origins_overrides_the_seed_name(monkeypatch):
    monkeypatch.setenv("CORS_ORIGINS", "http://a.example")
    monkeypatch.setenv("JARVIS_CORS_ORIGINS", "*")
    assert settings().cors_origins == ["*"]


def test_log_level_is_upper_cased(monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "debug")
    assert settings().log_level == "DEBUG"
    monkeypatch.setenv("JARVIS_LOG_LEVEL", "warning")
    assert settings().log_level == "WARNING"


def test_huggingface_token_under_either_name(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_from_hf_token")
    assert settings().hf_token == "hf_from_hf_token"
    monkeypatch.setenv("HUGGINGFACE_TOKEN", "hf_from_seed_name")
    assert settings().hf_token == "hf_from_seed_name"  # the seed's name wins when both are set


def test_database_url(monkeypatch):
    url = "postgresql+asyncpg://jarvis:secret@db.example:5432/jarvis"
    monkeypatch.setenv("JARVIS_DATABASE_URL", url)
    assert settings().db_url == url


def test_default_database_is_sqlite_in_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("JARVIS_DATA_DIR", str(tmp_path / "data"))
    s = settings()
    url = make_url(s.db_url)
    assert url.drivername == "sqlite+aiosqlite"
    assert Path(url.database) == tmp_path / "data" / "jarvis.db"
    assert s.models_dir == tmp_path / "data" / "models"


def test_models_dir_may_live_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setenv("JARVIS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("JARVIS_MODELS_DIR", str(tmp_path / "big-disk"))
    assert settings().models_dir == tmp_path / "big-disk"


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("gpu-box:11434", "http://gpu-box:11434"),
        ("http://gpu-box:11434/", "http://gpu-box:11434"),
        ("https://ollama.example", "https://ollama.example"),
    ],
)
def test_ollama_host_becomes_a_url(monkeypatch, value, url):
    monkeypatch.setenv("OLLAMA_HOST", value)
    assert settings().ollama_url == url


def test_remote_engine_and_registry_settings(monkeypatch):
    monkeypatch.setenv("JARVIS_OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("JARVIS_OPENAI_API_KEY", "sk-local")
    monkeypatch.setenv("JARVIS_API_KEY", "secret")
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example")
    monkeypatch.setenv("JARVIS_OLLAMA_REGISTRY", "https://registry.example")
    monkeypatch.setenv("JARVIS_ALLOW_INSECURE_URLS", "1")
    monkeypatch.setenv("JARVIS_LOAD_ON_START", "false")
    s = settings()
    assert s.openai_base_url == "http://127.0.0.1:8000/v1" and s.openai_api_key == "sk-local"
    assert s.api_key == "secret"
    assert s.hf_endpoint == "https://hf-mirror.example"
    assert s.ollama_registry == "https://registry.example"
    assert s.allow_insecure_urls is True
    assert s.load_on_start is False


def test_dotenv_file_in_the_working_directory(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("API_PORT=6100\nLOG_LEVEL=debug\nHUGGINGFACE_TOKEN=hf_x\nUNRELATED=1\n")
    s = Settings()  # reads ./.env
    assert (s.port, s.log_level, s.hf_token) == (6100, "DEBUG", "hf_x")
    monkeypatch.setenv("JARVIS_PORT", "6101")
    assert Settings().port == 6101  # the environment wins over the file


# --- known bugs in config.py, reported; these turn into failures once fixed (strict) -----


@pytest.mark.parametrize(("name", "value"), [("PORT", "1234"), ("HOST", "0.0.0.0"), ("DATABASE_URL", "sqlite://")])
def test_unprefixed_field_names_are_not_settings(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    s = settings()
    assert (s.port, s.host, s.database_url) == (5050, "127.0.0.1", None)


def test_bare_ollama_host_gets_ollamas_default_port(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box")
    assert settings().ollama_url == "http://gpu-box:11434"
