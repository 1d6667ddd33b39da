"""The seed's ways of starting the server work from the repo root: `python main.py` (port from
JARVIS_PORT / API_PORT / `.env`) and `uvicorn main:app`, with Swagger, ReDoc and OpenAPI."""

from __future__ import annotations

import socket
import sys

import httpx

from jarvis.models.bundled import DEFAULT_BUNDLED
from tests.cli import REPO, running, server_env
from tests.support.postgres import free_port


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_python_main_serves_on_jarvis_port_which_overrides_api_port(tmp_path, models_dir):
    port, ignored = free_port(), free_port()
    env = server_env(tmp_path / "data", models_dir, API_HOST="127.0.0.1", JARVIS_PORT=str(port), API_PORT=str(ignored))
    with running([sys.executable, "main.py"], port=port, env=env, cwd=REPO, log=tmp_path / "log") as server:
        health = httpx.get(server.url + "/api/health", timeout=30).json()
        assert health["status"] == "ok"
        assert health["active_model"] == DEFAULT_BUNDLED
        assert health["database"] == {"ok": True, "backend": "sqlite"}
        assert not _listening(ignored)
    assert (tmp_path / "data" / "jarvis.db").exists()


def test_uvicorn_main_app_serves_root_and_docs(tmp_path, models_dir):
    port = free_port()
    env = server_env(tmp_path / "data", models_dir)
    command = [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(port)]
    with (
        running(command, port=port, env=env, cwd=REPO, log=tmp_path / "log") as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        root = http.get("/").json()
        assert root["name"] == "JARVIS Core"
        assert root["links"]["docs"] == "/docs"

        docs = http.get("/docs")
        assert docs.status_code == 200 and "swagger-ui" in docs.text
        redoc = http.get("/redoc")
        assert redoc.status_code == 200 and "redoc" in redoc.text.lower()

        schema = http.get("/openapi.json").json()
        assert schema["info"]["title"] == "JARVIS Core"
        for path in ("/api/health", "/api/chat/sessions", "/api/chat/messages", "/api/v1/chat/"):
            assert path in schema["paths"], path


def test_dotenv_in_the_working_directory_sets_api_port(tmp_path, models_dir):
    port = free_port()
    (tmp_path / ".env").write_text(f"# as in the seed\nAPI_HOST=127.0.0.1\nAPI_PORT={port}\n")
    env = server_env(tmp_path / "data", models_dir)
    command = [sys.executable, str(REPO / "main.py")]
    with running(command, port=port, env=env, cwd=tmp_path, log=tmp_path / "log") as server:
        assert httpx.get(server.url + "/api/health", timeout=30).json()["active_model"] == DEFAULT_BUNDLED
