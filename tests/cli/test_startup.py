"""The client-side commands start without the server's heavy modules: `--help` of every
command, and `jarvis pull` standalone (transfer, verification, install). Which modules a
process imported is the behaviour checked here; how long that takes is bench/ territory."""

from __future__ import annotations

import pytest

from tests.cli import SERVER_SIDE_MODULES, jarvis_modules, server_env
from tests.conftest import fresh_store
from tests.support.gguf_files import gguf_bytes
from tests.support.postgres import free_port


@pytest.mark.parametrize("args", [["--help"], ["pull", "--help"], ["run", "--help"], ["rm", "--help"]])
def test_help_imports_no_server_side_module(args, tmp_path, models_dir):
    env = server_env(tmp_path / "data", models_dir)
    result, loaded = jarvis_modules(*args, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    assert loaded & SERVER_SIDE_MODULES == set()


def test_a_standalone_pull_imports_no_server_side_module(tmp_path, models_dir, hub):
    data = gguf_bytes(payload=3 << 20)
    served = hub.add_file("/files/tiny-Q4_K_M.gguf", data)
    env = server_env(
        tmp_path / "data",
        fresh_store(tmp_path / "store", models_dir),
        JARVIS_PORT=str(free_port()),
        JARVIS_ALLOW_INSECURE_URLS="true",
        JARVIS_DISK_RESERVE_MB="0",
    )
    result, loaded = jarvis_modules("pull", served.url, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "installed tiny-Q4_K_M" in result.stdout
    assert loaded & SERVER_SIDE_MODULES == set()
