"""kill -9 of the real server: during a streaming answer (the partial answer survives, marked
interrupted, and the database passes its integrity check), and a download on a disk that fills
up (a clear error; the next pull works without a restart)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time

import httpx
import pytest
from httpx_sse import connect_sse

from jarvis.models.bundled import BUNDLED_NAME
from tests.cli import JARVIS, REPO, running, server_env
from tests.support.clients import LONG_ANSWER
from tests.support.gguf_files import gguf_bytes
from tests.support.hub import Fault
from tests.support.postgres import free_port


def test_kill_9_during_a_streaming_answer(tmp_path, models_dir):
    port = free_port()
    env = server_env(tmp_path / "data", models_dir, JARVIS_DEFAULT_MODEL=BUNDLED_NAME)  # the fast base model
    command = [str(JARVIS), "serve", "--port", str(port)]
    received = ""
    with running(command, port=port, env=env, cwd=REPO, log=tmp_path / "first.log") as server:
        body = {"message": LONG_ANSWER, "stream": True, "temperature": 0, "max_tokens": 2000}
        with (
            httpx.Client(timeout=60) as http,
            connect_sse(http, "POST", server.url + "/api/chat/messages", json=body) as source,
        ):
            started_at = None  # the first token's arrival
            for event in source.iter_sse():
                if event.event == "start":
                    start = json.loads(event.data)
                elif event.event == "token":
                    received += json.loads(event.data)["content"]
                    started_at = started_at or time.monotonic()
                    if time.monotonic() - started_at > 2.5:  # past the first flushes of the answer
                        break
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=30)

    database = tmp_path / "data" / "jarvis.db"
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    with running(command, port=port, env=env, cwd=REPO, log=tmp_path / "second.log") as server:
        session = httpx.get(f"{server.url}/api/chat/sessions/{start['session_id']}").json()
    user, answer = session["messages"]
    assert user["content"] == body["message"] and user["status"] == "complete"
    assert answer["id"] == start["message_id"] and answer["status"] == "interrupted"
    assert answer["content"] and received.startswith(answer["content"])


@pytest.fixture
def small_disk(tmp_path):
    """A 40 MB filesystem for the model store (tmpfs; needs root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_disk_full_during_a_download_then_the_next_pull_works(tmp_path, small_disk, hub):
    data = gguf_bytes(payload=24 << 20)
    hub.add_hf_repo("acme/full-GGUF", {"full-Q4_K_M.gguf": data})
    hub.faults["full-Q4_K_M.gguf"] = Fault(throttle_bps=8 << 20, times=1)
    port = free_port()
    env = server_env(
        tmp_path / "data",
        small_disk,
        HF_ENDPOINT=hub.url,
        JARVIS_ALLOW_INSECURE_URLS="true",
        JARVIS_DISK_RESERVE_MB="0",
        JARVIS_LOAD_ON_START="false",
        JARVIS_DOWNLOAD_CONNECTIONS="1",
        JARVIS_DOWNLOAD_BACKOFF_SECONDS="0.05",
    )
    filler = small_disk / "filler"
    with running(
        [str(JARVIS), "serve", "--port", str(port)], port=port, env=env, cwd=REPO, log=tmp_path / "serve.log"
    ) as server:
        assert (
            httpx.post(server.url + "/api/models/download", json={"model_key": "hf.co/acme/full-GGUF"}).status_code
            == 202
        )
        while not list((small_disk / "blobs").glob("*.partial")):
            time.sleep(0.05)
        # the disk fills up while the download runs
        with filler.open("wb") as out:
            try:
                while True:
                    out.write(b"\0" * (1 << 20))
            except OSError:
                pass
        deadline = time.monotonic() + 60
        while True:
            job = httpx.get(server.url + "/api/models/available").json()
            status = next((m for m in job["models"] if m["model_key"] == "hf.co/acme/full-GGUF"), {})
            if status.get("status") == "error":
                break
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
        assert "disk is full" in status["error"]

        filler.unlink()
        retry = httpx.post(server.url + "/api/models/download", json={"model_key": "hf.co/acme/full-GGUF"})
        assert retry.status_code == 202
        deadline = time.monotonic() + 60
        while "hf.co/acme/full-GGUF:Q4_K_M" not in [
            m["name"] for m in httpx.get(server.url + "/api/models").json()["models"]
        ]:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
    assert os.path.exists(small_disk / "manifests")
