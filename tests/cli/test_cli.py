"""`jarvis serve | list | ps` as a user runs them: the installed console script, real servers on loopback."""

from __future__ import annotations

import httpx
import pytest

from jarvis.models.bundled import BUNDLED_NAME, DEFAULT_BUNDLED
from jarvis.models.store import ModelStore
from tests.cli import JARVIS, jarvis, running, server_env
from tests.support.postgres import free_port


@pytest.fixture(scope="module")
def served(tmp_path_factory, models_dir):
    """`jarvis serve --host 127.0.0.1 --port P` on a fresh data dir, for this module's tests."""
    root = tmp_path_factory.mktemp("cli-serve")
    port = free_port()
    env = server_env(root / "data", models_dir)
    command = [str(JARVIS), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, port=port, env=env, cwd=root, log=root / "server.log") as server:
        yield server


def test_serve_serves_the_api_with_the_bundled_model(served):
    health = httpx.get(served.url + "/api/health", timeout=30).json()
    assert health["status"] == "ok"
    assert health["active_model"] == DEFAULT_BUNDLED
    assert httpx.get(served.url + "/health", timeout=30).json()["active_model"] == DEFAULT_BUNDLED


def test_ps_prints_the_loaded_model(served, tmp_path, models_dir):
    env = server_env(tmp_path / "data", models_dir, API_HOST="127.0.0.1", JARVIS_PORT=str(served.port))
    done = jarvis("ps", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert DEFAULT_BUNDLED in done.stdout
    assert "llama_cpp" in done.stdout and "ready" in done.stdout


def test_ps_finds_the_server_through_api_port(served, tmp_path, models_dir):
    env = server_env(tmp_path / "data", models_dir, API_PORT=str(served.port))
    done = jarvis("ps", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert DEFAULT_BUNDLED in done.stdout


def test_ps_without_a_server_fails_with_one_clear_line(tmp_path, models_dir):
    port = free_port()  # nothing listens there
    env = server_env(tmp_path / "data", models_dir, API_HOST="127.0.0.1", JARVIS_PORT=str(port))
    done = jarvis("ps", env=env, cwd=tmp_path)
    assert done.returncode != 0
    assert f"no JARVIS server answers at http://127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout == ""


def test_list_shows_the_bundled_model_with_size_and_quantization(tmp_path, models_dir):
    manifest = ModelStore(models_dir).get(BUNDLED_NAME)
    env = server_env(tmp_path / "data", models_dir)
    done = jarvis("list", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if BUNDLED_NAME in line)
    assert "Q4_K_M" in row
    assert f"{manifest.size / 1e6:.0f} MB" in row
    assert "bundled" in row


def test_serve_help_names_its_options(tmp_path, models_dir):
    done = jarvis("serve", "--help", env=server_env(tmp_path / "data", models_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for option in ("--host", "--port", "--reload"):
        assert option in done.stdout


def test_serve_refuses_a_port_out_of_range(tmp_path, models_dir):
    done = jarvis("serve", "--port", "70000", env=server_env(tmp_path / "data", models_dir), cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
