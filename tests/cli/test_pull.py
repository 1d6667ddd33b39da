"""`jarvis pull / list / rm` against the local hub: standalone, through a running server,
and Ctrl-C then resume."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx

from tests.cli import JARVIS, REPO, SERVER_SIDE_MODULES, jarvis, jarvis_modules, running, server_env
from tests.conftest import fresh_store
from tests.support.gguf_files import gguf_bytes
from tests.support.hub import Fault
from tests.support.postgres import free_port

REPO_ID = "acme/tiny-GGUF"


def cli_env(tmp_path, models_dir, hub, port: int) -> dict[str, str]:
    store = fresh_store(tmp_path / "store", models_dir)
    return server_env(
        tmp_path / "data",
        store,
        HF_ENDPOINT=hub.url,
        JARVIS_OLLAMA_REGISTRY=hub.url,
        JARVIS_ALLOW_INSECURE_URLS="true",
        JARVIS_PORT=str(port),
        JARVIS_LOAD_ON_START="false",
        JARVIS_DOWNLOAD_STALL_SECONDS="2",
        JARVIS_DOWNLOAD_BACKOFF_SECONDS="0.05",
        JARVIS_DISK_RESERVE_MB="0",
    )


def test_pull_list_rm_standalone(tmp_path, models_dir, hub):
    hub.add_hf_repo(REPO_ID, {"tiny-Q4_K_M.gguf": gguf_bytes(payload=6 << 20)})
    env = cli_env(tmp_path, models_dir, hub, free_port())  # nothing listens there: standalone
    pulled = jarvis("pull", f"hf.co/{REPO_ID}", env=env, cwd=tmp_path)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert "installed hf.co/acme/tiny-GGUF:Q4_K_M" in pulled.stdout
    listed = jarvis("list", env=env, cwd=tmp_path)
    assert "hf.co/acme/tiny-GGUF:Q4_K_M" in listed.stdout and "gemma3:270m" in listed.stdout
    again = jarvis("pull", f"hf.co/{REPO_ID}:Q4_K_M", env=env, cwd=tmp_path)
    assert again.returncode == 0 and hub.bytes_sent("tiny-Q4_K_M.gguf") == len(gguf_bytes(payload=6 << 20))
    removed = jarvis("rm", f"hf.co/{REPO_ID}", env=env, cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert "tiny" not in jarvis("list", env=env, cwd=tmp_path).stdout


def test_pull_errors_are_one_line(tmp_path, models_dir, hub):
    hub.add_hf_repo(REPO_ID, {"tiny-Q4_K_M.gguf": gguf_bytes(payload=1 << 20)})
    env = cli_env(tmp_path, models_dir, hub, free_port())
    missing = jarvis("pull", f"hf.co/{REPO_ID}", "-q", "Q8_0", env=env, cwd=tmp_path)
    assert missing.returncode == 1
    assert "Q4_K_M" in missing.stderr and "Traceback" not in missing.stderr
    assert jarvis("rm", "nothing-here:1b", env=env, cwd=tmp_path).returncode == 1


def test_pull_through_a_running_server(tmp_path, models_dir, hub):
    hub.add_hf_repo(REPO_ID, {"tiny-Q4_K_M.gguf": gguf_bytes(payload=6 << 20)})
    port = free_port()
    env = cli_env(tmp_path, models_dir, hub, port)
    with running(
        [str(JARVIS), "serve", "--port", str(port)], port=port, env=env, cwd=REPO, log=tmp_path / "serve.log"
    ) as server:
        pulled, loaded = jarvis_modules("pull", f"hf.co/{REPO_ID}", env=env, cwd=tmp_path)
        assert pulled.returncode == 0, pulled.stdout + pulled.stderr
        assert loaded & SERVER_SIDE_MODULES == set()  # a client of the server starts light
        names = [m["name"] for m in httpx.get(server.url + "/api/models").json()["models"]]
        assert "hf.co/acme/tiny-GGUF:Q4_K_M" in names
        removed = jarvis("rm", "hf.co/acme/tiny-GGUF:Q4_K_M", env=env, cwd=tmp_path)
        assert removed.returncode == 0
        names = [m["name"] for m in httpx.get(server.url + "/api/models").json()["models"]]
        assert "hf.co/acme/tiny-GGUF:Q4_K_M" not in names
    # `jarvis serve` says where a person opens the console
    assert f"web console: open http://127.0.0.1:{port}/ in a browser" in (tmp_path / "serve.log").read_text()


def test_ctrl_c_stops_and_pulling_again_resumes(tmp_path, models_dir, hub):
    data = gguf_bytes(payload=24 << 20)
    hub.add_hf_repo(REPO_ID, {"tiny-Q4_K_M.gguf": data})
    hub.faults["tiny-Q4_K_M.gguf"] = Fault(throttle_bps=4 << 20, times=1)  # slow for the first run only
    env = cli_env(tmp_path, models_dir, hub, free_port())
    env["JARVIS_DOWNLOAD_CONNECTIONS"] = "1"
    process = subprocess.Popen(
        [str(JARVIS), "pull", f"hf.co/{REPO_ID}"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while hub.bytes_sent("tiny-Q4_K_M.gguf") < 4 << 20:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert "resume" in output
    first = hub.bytes_sent("tiny-Q4_K_M.gguf")
    assert first < len(data)
    assert list((tmp_path / "store" / "blobs").glob("*.partial"))  # kept for the resume

    resumed = jarvis("pull", f"hf.co/{REPO_ID}", env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # the second run fetched only what was missing (plus at most a few MiB not yet recorded)
    assert hub.bytes_sent("tiny-Q4_K_M.gguf") - first <= len(data) - first + (4 << 20)
    assert hub.bytes_sent("tiny-Q4_K_M.gguf") < len(data) + (4 << 20)
    assert not list((tmp_path / "store" / "blobs").glob("*.partial"))
