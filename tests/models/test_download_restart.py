"""kill -9 of the server mid-download: after a restart the job resumes by itself and fetches
only what was missing."""

from __future__ import annotations

import os
import signal
import time

import httpx

from tests.cli import JARVIS, REPO, running, server_env
from tests.conftest import fresh_store
from tests.support.gguf_files import gguf_bytes
from tests.support.hub import Fault
from tests.support.postgres import free_port

SIZE = 48 << 20


def test_kill_9_mid_download_resumes_after_restart(tmp_path, models_dir, hub):
    data = gguf_bytes(payload=SIZE)
    hub.add_hf_repo("acme/big-GGUF", {"big-Q4_K_M.gguf": data})
    hub.faults["big-Q4_K_M.gguf"] = Fault(throttle_bps=12 << 20)
    store = fresh_store(tmp_path / "store", models_dir)
    port = free_port()
    env = server_env(
        tmp_path / "data",
        store,
        HF_ENDPOINT=hub.url,
        JARVIS_LOAD_ON_START="false",
        JARVIS_ALLOW_INSECURE_URLS="true",
        JARVIS_DISK_RESERVE_MB="0",
        JARVIS_DOWNLOAD_BACKOFF_SECONDS="0.05",
    )
    command = [str(JARVIS), "serve", "--port", str(port)]

    with running(command, port=port, env=env, cwd=REPO, log=tmp_path / "first.log") as server:
        started = httpx.post(server.url + "/api/models/download", json={"model_key": "hf.co/acme/big-GGUF"})
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 120
        while hub.bytes_sent("big-Q4_K_M.gguf") < len(data) // 3:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
    sent_before = hub.bytes_sent("big-Q4_K_M.gguf")
    assert sent_before < len(data)
    assert list((store / "jobs").glob("*.json")) and list((store / "blobs").glob("*.partial"))

    # a week-old partial of a job that resumes is kept; a week-old one no job wants goes
    abandoned = store / "blobs" / ("sha256-" + "1" * 64 + ".partial")
    abandoned.write_bytes(b"old bytes")
    abandoned.with_name(abandoned.name + ".json").write_text("{}")
    recent = store / "blobs" / ("url-" + "2" * 32 + ".partial")
    recent.write_bytes(b"paused yesterday")
    week_ago = time.time() - 8 * 86400
    for path in (store / "blobs").glob("*.partial*"):
        if path != recent:
            os.utime(path, (week_ago, week_ago))

    del hub.faults["big-Q4_K_M.gguf"]
    with running(command, port=port, env=env, cwd=REPO, log=tmp_path / "second.log") as server:
        deadline = time.monotonic() + 120
        while True:
            names = {m["name"]: m for m in httpx.get(server.url + "/api/models").json()["models"]}
            if "hf.co/acme/big-GGUF:Q4_K_M" in names:
                break
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
    model = names["hf.co/acme/big-GGUF:Q4_K_M"]
    assert model["verified"] and model["size"] == len(data)
    total = hub.bytes_sent("big-Q4_K_M.gguf")
    # everything was sent once, plus what was in flight or not yet recorded at the kill
    print(f"re-transferred after kill -9: {total - len(data)} bytes of {len(data)}")
    assert total - len(data) <= 12 << 20, (total, len(data))
    assert not list((store / "jobs").glob("*.json"))
    assert sorted(p.name for p in (store / "blobs").glob("*.partial*")) == [recent.name]
