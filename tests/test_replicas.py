"""Several processes on one data dir, as `uvicorn main:app --workers N` or replicas behind a
load balancer run: they start at the same moment on a fresh database and model store, and
may pull the same model at once. One does each piece of work; the others wait and find it done."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from tests.cli import JARVIS, REPO, running, server_env
from tests.conftest import fresh_store
from tests.support.gguf_files import gguf_bytes
from tests.support.hub import Fault
from tests.support.postgres import free_port

START = """
import asyncio, sys
from jarvis.config import Settings
from jarvis.models.bundled import ensure_bundled
from jarvis.models.store import ModelStore
from jarvis.storage.db import Database

async def main():
    settings = Settings()
    database = Database(settings.db_url)
    await database.migrate()
    await database.close()
    print(" ".join(sorted(m.digest for m in ensure_bundled(ModelStore(settings.models_dir)))))

asyncio.run(main())
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_processes_starting_together_migrate_and_install_once(tmp_path, backend, request):
    env = server_env(tmp_path / "data", tmp_path / "store")  # an empty store: the bundled models are written out
    if backend == "postgres":
        env["JARVIS_DATABASE_URL"] = request.getfixturevalue("postgres").create_database(
            f"replicas_{tmp_path.name[-12:]}"
        )
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", START], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in starts]
    assert [code for code, _, _ in results] == [0, 0, 0], [err[-2000:] for _, _, err in results]
    assert len({out.strip() for _, out, _ in results}) == 1
    blobs = sorted(p.name for p in (tmp_path / "store" / "blobs").iterdir())
    assert blobs == results[0][1].split()  # one blob per bundled model, no leftover partial


def wait_until_installed(server, name: str) -> None:
    deadline = time.monotonic() + 120
    while name not in {m["name"] for m in httpx.get(server.url + "/api/models").json()["models"]}:
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)


def test_two_servers_pulling_the_same_model_fetch_it_once(tmp_path, models_dir, hub):
    data = gguf_bytes(payload=24 << 20, seed=91)
    hub.add_hf_repo("acme/shared-GGUF", {"shared-Q4_K_M.gguf": data})
    hub.faults["shared-Q4_K_M.gguf"] = Fault(throttle_bps=24 << 20)  # about a second: the pulls overlap
    store = fresh_store(tmp_path / "store", models_dir)
    ports = [free_port(), free_port()]
    envs = [
        server_env(
            tmp_path / f"data-{i}",
            store,
            HF_ENDPOINT=hub.url,
            JARVIS_LOAD_ON_START="false",
            JARVIS_ALLOW_INSECURE_URLS="true",
            JARVIS_DISK_RESERVE_MB="0",
        )
        for i in range(2)
    ]
    commands = [[str(JARVIS), "serve", "--port", str(port)] for port in ports]
    with (
        running(commands[0], port=ports[0], env=envs[0], cwd=REPO, log=tmp_path / "a.log") as first,
        running(commands[1], port=ports[1], env=envs[1], cwd=REPO, log=tmp_path / "b.log") as second,
    ):
        for server in (first, second):
            started = httpx.post(server.url + "/api/models/download", json={"model_key": "hf.co/acme/shared-GGUF"})
            assert started.status_code == 202, started.text
        for server in (first, second):
            wait_until_installed(server, "hf.co/acme/shared-GGUF:Q4_K_M")
    # Fetched once, by one of them: a second fetch would be another len(data). Not exactly
    # len(data): when a connection crawls (a busy machine), another takes over part of its
    # segment, and what the crawling one had already sent past the cut counts as sent too.
    assert len(data) <= hub.bytes_sent("shared-Q4_K_M.gguf") < 1.5 * len(data)
    blobs = [p.name for p in (store / "blobs").iterdir() if "partial" in p.name]
    assert blobs == []
