"""Run the real server and the real `jarvis` command as subprocesses on loopback.

Shared by tests/cli and tests/test_seed_compat.py. Each server gets a temporary data dir
and the run's one model store (`models_dir` from tests/conftest.py), so the bundled model
is not written out again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import AliasChoices

from jarvis.config import Settings

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's bin: not resolved, a venv's python is a symlink
JARVIS = BIN / "jarvis"
# A generous bound for start-up on a busy machine; readiness is polled, never timed.
START_DEADLINE_S = 300.0
CLI_TIMEOUT_S = 120.0


def setting_env_names() -> set[str]:
    """Every environment name Settings might read (aliases and field names), upper-cased."""
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(name.upper())
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias] if alias else []
        names.update(str(choice).upper() for choice in choices)
    return names


def server_env(data_dir: Path, models_dir: Path, **values: str) -> dict[str, str]:
    """This process's environment without any JARVIS setting, plus a data dir, the shared
    model store and `values`."""
    names = setting_env_names()
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    env.update(
        JARVIS_DATA_DIR=str(data_dir),
        JARVIS_MODELS_DIR=str(models_dir),
        PYTHONUNBUFFERED="1",
        COLUMNS="200",  # rich tables at a fixed width, whatever the terminal that runs pytest
    )
    env.update(values)
    return env


@dataclass
class Running:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group we started (uvicorn's reloader has a child), then SIGKILL."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass


@contextmanager
def running(command: list[str], *, port: int, env: dict[str, str], cwd: Path, log: Path) -> Iterator[Running]:
    """Start `command`, wait until `/api/health` on `port` answers 200, stop it on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Running(process, port, log)
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            if process.poll() is not None:
                raise AssertionError(f"{command} exited with {process.returncode}:\n{server.output()}")
            try:
                if httpx.get(server.url + "/api/health", timeout=5.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{command} did not answer on port {port}:\n{server.output()}")
            time.sleep(0.25)
        yield server
    finally:
        _stop(process)


def jarvis(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run the installed `jarvis` console script."""
    assert JARVIS.exists(), f"{JARVIS} is missing: install the project (`pip install -e .`)"
    return subprocess.run([str(JARVIS), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


# What the client-side commands must not import: the server's web framework, the database
# layer, llama.cpp and numpy (with the `gguf` package that pulls it in). Each costs a large
# part of a second at start-up (src/jarvis/cli/main.py).
SERVER_SIDE_MODULES = frozenset(
    {"numpy", "gguf", "llama_cpp", "sqlalchemy", "alembic", "aiosqlite", "asyncpg", "fastapi", "starlette", "uvicorn"}
)
_LOADED_AT_EXIT = """
import atexit, json, os, sys

def report():
    with open(os.environ["JARVIS_TEST_MODULES_FILE"], "w") as out:
        json.dump(sorted({name.split(".")[0] for name in sys.modules}), out)

atexit.register(report)
sys.argv[0] = "jarvis"
from jarvis.cli.main import app
app()
"""


def jarvis_modules(*args: str, env: dict[str, str], cwd: Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `jarvis ARGS` as the console script does; returns the result and the top-level
    packages the process had imported when it exited."""
    report = cwd / f"modules-{time.monotonic_ns()}.json"
    result = subprocess.run(
        [sys.executable, "-c", _LOADED_AT_EXIT, *args],
        cwd=cwd,
        env={**env, "JARVIS_TEST_MODULES_FILE": str(report)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    loaded = set(json.loads(report.read_text()))
    report.unlink()
    return result, loaded
