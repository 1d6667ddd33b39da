"""Download jobs shared by two `jarvis serve` replicas on one PostgreSQL and one model store
(models/downloads/shared.py): a job started on A is listed and streamed on B, B cancels it on
A, and when A is killed -9 mid-download B takes the job over and installs the model once."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from jarvis.models.store import ModelStore
from tests.cli import JARVIS, REPO, Running, running, server_env
from tests.conftest import fresh_store
from tests.support.downloads import collect, snapshot_of, until
from tests.support.gguf_files import gguf_bytes
from tests.support.hub import Fault
from tests.support.postgres import free_port

KEY = "hf.co/acme/slow-GGUF"
FILE = "slow-Q4_K_M.gguf"
NAME = f"{KEY}:Q4_K_M"


@contextmanager
def two_replicas(tmp_path: Path, stores: list[Path], database_url: str, hub_url: str) -> Iterator[list[Running]]:
    with ExitStack() as stack:
        replicas = []
        for name, store in zip("ab", stores, strict=True):
            port = free_port()
            env = server_env(
                tmp_path / f"data-{name}", store, JARVIS_DATABASE_URL=database_url, HF_ENDPOINT=hub_url,
                JARVIS_REPLICA_ID=f"replica-{name}", JARVIS_LOAD_ON_START="false", JARVIS_ALLOW_INSECURE_URLS="true",
                JARVIS_DISK_RESERVE_MB="0", JARVIS_DOWNLOAD_CONNECTIONS="1",
            )  # fmt: skip
            command = [str(JARVIS), "serve", "--port", str(port)]
            replicas.append(
                stack.enter_context(running(command, port=port, env=env, cwd=REPO, log=tmp_path / f"{name}.log"))
            )
        yield replicas


@pytest.fixture
def slow_model(hub) -> bytes:
    data = gguf_bytes(payload=12 << 20, seed=141)
    hub.add_hf_repo("acme/slow-GGUF", {FILE: data})
    hub.faults[FILE] = Fault(throttle_bps=768 << 10)  # about 16 s: long enough to watch, cancel or kill
    return data


@pytest.fixture
def setup(tmp_path, models_dir, postgres, hub, slow_model):
    """Two replicas on one database and one model store."""
    store = fresh_store(tmp_path / "store", models_dir)
    with two_replicas(tmp_path, [store, store], database(postgres), hub.url) as replicas:
        yield replicas, store


def database(postgres) -> str:
    return postgres.new_database("shared_dl")


def listed(server: Running) -> dict | None:
    """The entry of the slow model in `GET /api/models/available` of `server`."""
    models = httpx.get(server.url + "/api/models/available", timeout=30).json()["models"]
    return next((m for m in models if m["model_key"] == KEY), None)


def downloading_on(server: Running, *, past: int = 0) -> dict | None:
    entry = listed(server)
    if entry and entry["status"] == "downloading" and entry["download"]["downloaded_bytes"] > past:
        return entry
    return None


@pytest.mark.parametrize("keep_partial", [False, True], ids=["cancel", "pause"])
async def test_a_job_started_on_a_is_listed_streamed_and_cancelled_on_b(setup, hub, keep_partial):
    (a, b), store = setup
    started = httpx.post(a.url + "/api/models/download", json={"model_key": KEY}, timeout=60)
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]

    entry = await until(lambda: downloading_on(b), timeout=60, what="A's job in B's list with progress")
    assert entry["download"]["job_id"] == job_id

    async with httpx.AsyncClient(base_url=b.url, timeout=60) as http:
        events = await collect(
            http,
            lambda seen: len(seen) > 1 and seen[-1][1]["downloaded_bytes"] > seen[0][1]["downloaded_bytes"],
            model=job_id,
        )
        assert {data["job_id"] for _, data in events} == {job_id}
        assert events[0][1]["status"] in ("downloading", "stalled", "retrying")

        cancelled = await http.post("/api/models/cancel", json={"model_key": job_id, "keep_partial": keep_partial})
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["job_id"] == job_id

        again = await http.post("/api/models/cancel", json={"model_key": job_id})
        assert again.status_code == 404, again.text
        assert again.json()["error"]["code"] == "not_found"

    async with httpx.AsyncClient(base_url=a.url, timeout=60) as http:
        assert (await snapshot_of(http, job_id))["status"] == "cancelled"
    sent = hub.bytes_sent(FILE)
    time.sleep(1.5)  # a transfer still running would have sent more by now
    assert hub.bytes_sent(FILE) == sent
    partials = [p.name for p in (store / "blobs").iterdir() if p.name.endswith(".partial")]
    assert len(partials) == (1 if keep_partial else 0)  # a pause keeps the partial data to resume from
    assert listed(a)["status"] == "not_downloaded"


async def test_b_takes_over_the_download_of_a_killed_replica(setup, hub, slow_model):
    (a, b), store = setup
    started = httpx.post(a.url + "/api/models/download", json={"model_key": KEY}, timeout=60)
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    await until(lambda: downloading_on(b, past=2 << 20), timeout=60, what="A's job two MB in")

    os.killpg(a.process.pid, signal.SIGKILL)
    a.process.wait(timeout=30)

    def installed() -> list[dict]:
        models = httpx.get(b.url + "/api/models", timeout=30).json()["models"]
        return [m for m in models if m["name"] == NAME]

    found = await until(installed, timeout=120, what="B to finish A's download")
    assert len(found) == 1
    manifest = ModelStore(store).get(NAME)
    assert manifest is not None
    blob = ModelStore(store).blob_path(manifest.digest)
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == hashlib.sha256(slow_model).hexdigest()
    assert blob.read_bytes() == slow_model
    assert not [p.name for p in (store / "blobs").iterdir() if "partial" in p.name]
    assert not list((store / "jobs").iterdir())
    assert hub.bytes_sent(FILE) < 2 * len(slow_model)  # resumed from A's partial file, not fetched again
    async with httpx.AsyncClient(base_url=b.url, timeout=60) as http:
        assert (await snapshot_of(http, job_id))["status"] == "completed"


async def test_with_stores_of_their_own_b_starts_a_killed_replicas_download_over(
    tmp_path, models_dir, postgres, hub, slow_model
):
    stores = [fresh_store(tmp_path / f"store-{name}", models_dir) for name in "ab"]
    with two_replicas(tmp_path, stores, database(postgres), hub.url) as (a, b):
        started = httpx.post(a.url + "/api/models/download", json={"model_key": KEY}, timeout=60)
        assert started.status_code == 202, started.text
        await until(lambda: downloading_on(b, past=1 << 20), timeout=60, what="A's job a MB in")
        os.killpg(a.process.pid, signal.SIGKILL)
        a.process.wait(timeout=30)
        await until(
            lambda: NAME in {m["name"] for m in httpx.get(b.url + "/api/models", timeout=30).json()["models"]},
            timeout=120,
            what="B to download A's model again",
        )
    manifest = ModelStore(stores[1]).get(NAME)
    assert manifest is not None
    assert ModelStore(stores[1]).blob_path(manifest.digest).read_bytes() == slow_model
    assert ModelStore(stores[0]).get(NAME) is None  # A's store keeps only its partial file
    assert hub.bytes_sent(FILE) > len(slow_model)  # started over: every byte fetched again for B's store
