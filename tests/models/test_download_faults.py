"""Downloads against a misbehaving hub: dropped, stalled, corrupted and truncated transfers, broken
Range support, expiring CDN URLs, error statuses and pages, cancel, deduplication, the disk
pre-check, the queue, and the progress stream's promises (late and many subscribers, rate,
never backwards)."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest
from httpx_sse import aconnect_sse

from jarvis.errors import Conflict
from jarvis.events import EventBus
from jarvis.models.bundled import BUNDLED_MODELS
from jarvis.models.downloads import DownloadJob, DownloadManager
from jarvis.models.plan import Plan
from jarvis.models.store import ModelStore
from tests.support.clients import client
from tests.support.downloads import (
    assert_honest,
    blob_names,
    collect,
    leftovers,
    manifest_names,
    pull,
    pull_and_wait,
    serving,
    until,
)
from tests.support.gguf_files import gguf_bytes
from tests.support.hub import Fault

MiB = 1 << 20
SLACK = 4 * MiB  # bytes a cut connection may have had in flight


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def add_model(hub, name: str, size: int, *, seed: int = 1, quant: str = "Q4_K_M") -> tuple[bytes, str, str]:
    """An HF repo `acme/<name>` with one GGUF of about `size` bytes; returns (data, file, key)."""
    data = gguf_bytes(payload=size, seed=seed)
    file = f"{name}-{quant}.gguf"
    hub.add_hf_repo(f"acme/{name}", {file: data})
    return data, file, f"hf.co/acme/{name}"


def installed_digest(server, name: str) -> str | None:
    manifest = ModelStore(server.settings.models_dir).get(name)
    return manifest.digest if manifest else None


def assert_clean(server, *, bundled_only: bool = True) -> None:
    store = server.settings.models_dir
    assert leftovers(store) == []
    if bundled_only:
        assert len(blob_names(store)) == len(manifest_names(store)) == len(BUNDLED_MODELS)  # the bundled models alone


# -- transfers that break and recover ---------------------------------------------------------------------


async def test_dropped_connection_resumes_where_it_was_cut(hub, dl_server):
    data, file, key = add_model(hub, "drop", 32 * MiB)
    hub.faults[file] = Fault(drop_at=12 * MiB + 12345, times=3)
    async with client(dl_server) as http:
        events = await pull_and_wait(http, key)
    assert events[-1]["status"] == "completed", events[-1]
    assert installed_digest(dl_server, f"{key}:Q4_K_M") == f"sha256-{sha(data)}"
    assert hub.faults[file].hits >= 1 and any(r.aborted for r in hub.requests)
    assert len(data) <= hub.bytes_sent(file) <= len(data) + SLACK
    assert_clean(dl_server, bundled_only=False)


async def test_stall_is_reported_and_retried(hub, download_settings):
    # one segment (smaller than the smallest), so the whole transfer stops while it stalls
    data, file, key = add_model(hub, "stall", 6 * MiB)
    hub.faults[file] = Fault(stall_at=3 * MiB, stall_seconds=30, times=1)
    with serving(download_settings(download_stall_seconds=3.0)) as server:
        async with client(server) as http:
            events = await pull_and_wait(http, key)
    assert events[-1]["status"] == "completed", events[-1]
    assert installed_digest(server, f"{key}:Q4_K_M") == f"sha256-{sha(data)}"
    midway = [e for e in events if 0 < e["downloaded_bytes"] < len(data)]
    stalled = [e for e in midway if e["status"] in ("stalled", "retrying")]
    assert stalled, [(e["status"], e["downloaded_bytes"], e["speed_mbps"]) for e in events]
    # no frozen speed: while nothing arrives it says so
    assert any(e["speed_mbps"] == 0 and e["status"] == "stalled" for e in midway), stalled
    assert hub.bytes_sent(file) <= len(data) + SLACK


async def test_corrupt_bytes_fail_verification_and_leave_nothing(hub, dl_server):
    data, file, key = add_model(hub, "corrupt", 16 * MiB)
    hub.faults[file] = Fault(corrupt_at=5 * MiB + 3)
    async with client(dl_server) as http:
        async with aconnect_sse(http, "GET", "/api/models/download/progress") as source:
            stream = source.aiter_sse()
            await pull(http, "gemma3:270m")  # installed: its event comes at once, so the stream is live
            assert json.loads((await anext(stream)).data)["name"] == "gemma3:270m"
            job = await pull(http, key)
            events = []
            async for event in stream:
                events.append((event.event, json.loads(event.data)))
                if event.event == "error":
                    break
        models = (await http.get("/api/models")).json()["models"]
    final = [d for kind, d in events if kind == "progress"][-1]
    assert final["job_id"] == job["job_id"] and final["status"] == "error"
    assert final["error_code"] == "verification_failed"
    assert "sha256" in final["error"] and "does not match" in final["error"]
    error = events[-1][1]
    assert error["model"] == key and error["error"] == final["error"]
    assert sorted(m["name"] for m in models) == sorted(BUNDLED_MODELS)
    assert_clean(dl_server)


@pytest.mark.parametrize(
    "fault",
    [
        Fault(ignore_range=True),
        Fault(refuse_range=True),
        Fault(refuse_range=True, refuse_status=416),
        Fault(bad_content_range=True),
    ],
    ids=["ignore_range", "refuse_range_501", "refuse_range_416", "bad_content_range"],
)
async def test_broken_range_support_falls_back_to_one_stream(hub, dl_server, fault):
    data, file, key = add_model(hub, "norange", 24 * MiB)
    hub.faults[file] = fault
    async with client(dl_server) as http:
        events = await pull_and_wait(http, key)
    assert events[-1]["status"] == "completed", events[-1]
    assert installed_digest(dl_server, f"{key}:Q4_K_M") == f"sha256-{sha(data)}"
    cdn = [r for r in hub.requests if r.path.startswith("/cdn/") and r.method == "GET"]
    assert any(r.range for r in cdn) and cdn[-1].range is None  # tried Range, finished in one stream
    assert cdn[-1].status == 200 and cdn[-1].bytes_sent == len(data)
    assert_clean(dl_server, bundled_only=False)


async def test_expired_cdn_url_is_resolved_again_from_the_origin(hub, download_settings):
    data, file, key = add_model(hub, "expire", 24 * MiB)  # three segments, fetched one after another
    hub.faults[file] = Fault(expire_after=1)
    with serving(download_settings(download_connections=1)) as server:
        async with client(server) as http:
            events = await pull_and_wait(http, key)
    assert events[-1]["status"] == "completed", events[-1]
    assert installed_digest(server, f"{key}:Q4_K_M") == f"sha256-{sha(data)}"
    resolves = [r for r in hub.requests if "/resolve/" in r.path and r.method == "GET"]
    expired = [r for r in hub.requests if r.path.startswith("/cdn/") and r.status == 403]
    assert len(resolves) >= 2 and expired
    assert hub.bytes_sent(file) == len(data)


async def test_a_token_revoked_mid_download_says_so(hub, download_settings):
    hub.token = "hf_soon_revoked"
    data = gguf_bytes(payload=24 * MiB, seed=6)
    hub.add_hf_repo("acme/revoked-GGUF", {"revoked-Q4_K_M.gguf": data}, private=True)
    # one connection, and each signed URL good for one request: every segment goes back to the origin
    hub.faults["revoked-Q4_K_M.gguf"] = Fault(expire_after=1, throttle_bps=8 * MiB)
    with serving(download_settings(hf_token="hf_soon_revoked", download_connections=1)) as server:
        async with client(server) as http:
            job = await pull(http, "hf.co/acme/revoked-GGUF")
            await until(lambda: hub.bytes_sent("revoked-Q4_K_M.gguf") > 0, what="the download to start")
            hub.token = "hf_another"
            events = await collect(http, lambda ev: ev[-1][1]["status"] in ("completed", "error"), model=job["job_id"])
    final = events[-1][1]
    assert final["status"] == "error" and final["error_code"] == "upstream_auth", final
    assert "refused access (401: Repository not found)" in final["error"]
    assert installed_digest(server, "hf.co/acme/revoked-GGUF:Q4_K_M") is None
    assert not list((server.settings.models_dir / "jobs").iterdir())


async def test_server_errors_are_retried(hub, dl_server):
    data, file, key = add_model(hub, "busy", 8 * MiB)
    hub.faults[file] = Fault(status=503, times=2)
    async with client(dl_server) as http:
        events = await pull_and_wait(http, key)
    assert events[-1]["status"] == "completed", events[-1]
    assert installed_digest(dl_server, f"{key}:Q4_K_M") == f"sha256-{sha(data)}"
    assert [r.status for r in hub.requests if r.path.startswith("/cdn/")].count(503) == 2


async def test_rate_limited_with_retry_after(hub, dl_server):
    data, file, key = add_model(hub, "limited", 2 * MiB)
    hub.faults[file] = Fault(status=429, retry_after=1, times=1)
    async with client(dl_server) as http:
        events = await pull_and_wait(http, key)
    assert events[-1]["status"] == "completed", events[-1]
    assert installed_digest(dl_server, f"{key}:Q4_K_M") == f"sha256-{sha(data)}"


async def test_html_error_page_is_never_installed(hub, dl_server):
    data, file, key = add_model(hub, "html", 2 * MiB)
    hub.faults[file] = Fault(html_error=True)
    async with client(dl_server) as http:
        events = await pull_and_wait(http, key)
        assert events[-1]["status"] == "error", events[-1]
        assert "html" in events[-1]["error"].lower()
        assert installed_digest(dl_server, f"{key}:Q4_K_M") is None
        store = dl_server.settings.models_dir
        assert len(blob_names(store) - {p for p in blob_names(store) if "." in p}) == len(BUNDLED_MODELS)  # no new blob
        assert not list((store / "jobs").iterdir())
        # the page is gone: pulling again fetches the model
        del hub.faults[file]
        again = await pull_and_wait(http, key)
    assert again[-1]["status"] == "completed", again[-1]
    assert installed_digest(dl_server, f"{key}:Q4_K_M") == f"sha256-{sha(data)}"
    assert_clean(dl_server, bundled_only=False)


async def test_truncated_responses_are_resumed(hub, dl_server):
    data, file, key = add_model(hub, "short", 16 * MiB)
    hub.faults[file] = Fault(truncate_to=3 * MiB)
    async with client(dl_server) as http:
        events = await pull_and_wait(http, key)
    assert events[-1]["status"] == "completed", events[-1]
    assert installed_digest(dl_server, f"{key}:Q4_K_M") == f"sha256-{sha(data)}"
    assert hub.faults[file].hits >= 2
    assert hub.bytes_sent(file) <= len(data) + SLACK


# -- cancel ------------------------------------------------------------------------------------------------


async def test_cancel_stops_the_transfer_and_removes_everything(hub, dl_server):
    data, file, key = add_model(hub, "slow", 48 * MiB)
    hub.faults[file] = Fault(throttle_bps=2 * MiB)
    async with client(dl_server) as http:
        job = await pull(http, key)
        await until(lambda: hub.bytes_sent(file) >= 2 * MiB, what="bytes to flow")
        cancelled = await http.post("/api/models/cancel", json={"model_key": key})
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        events = await collect(http, lambda ev: True, model=job["job_id"])  # the current state first
        assert events[0][1]["status"] == "cancelled"

        async def settled() -> bool:
            before = hub.bytes_sent(file)
            await asyncio.sleep(0.5)
            return hub.bytes_sent(file) == before

        await until(settled, timeout=20, what="bytes to stop flowing")
        stopped = hub.bytes_sent(file)
        await asyncio.sleep(1.0)
        assert hub.bytes_sent(file) == stopped < len(data)
        again = await http.post("/api/models/cancel", json={"model_key": key})
        assert again.status_code == 404  # nothing runs any more
    assert_clean(dl_server)


async def test_cancel_a_queued_download(hub, download_settings):
    slow, slow_file, slow_key = add_model(hub, "first", 8 * MiB, seed=2)
    _, waiting_file, waiting_key = add_model(hub, "second", 1 * MiB, seed=3)
    hub.faults[slow_file] = Fault(throttle_bps=4 * MiB)
    with serving(download_settings(max_concurrent_downloads=1)) as server:
        async with client(server) as http:
            first = await pull(http, slow_key)
            second = await pull(http, waiting_key)
            assert second["status"] == "queued"
            cancelled = await http.post("/api/models/cancel", json={"model_key": second["job_id"]})
            assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
            events = await collect(http, lambda ev: ev[-1][1]["status"] == "completed", model=first["job_id"])
    assert events[-1][1]["status"] == "completed"
    assert hub.bytes_sent(waiting_file) == 0
    assert installed_digest(server, f"{waiting_key}:Q4_K_M") is None
    assert leftovers(server.settings.models_dir) == []


async def test_cancel_is_refused_once_the_model_is_being_installed(make_settings, tmp_path):
    manager = DownloadManager(ModelStore(tmp_path / "models"), make_settings(), bus=EventBus())
    job = DownloadJob(
        id="j1", model_key="qwen", quantization=None, plan=Plan(name="qwen:Q4_K_M", model_key="qwen", source="hf")
    )
    job.status = "verifying"
    manager.jobs[job.id] = job
    try:
        with pytest.raises(Conflict, match="being installed"):
            await manager.cancel("qwen")
        assert not job.cancel.is_set() and job.status == "verifying"
    finally:
        await manager.client.aclose()


# -- one transfer per file -----------------------------------------------------------------------------------


async def test_the_same_model_asked_twice_at_once_is_one_job(hub, dl_server):
    data, file, key = add_model(hub, "twice", 24 * MiB)
    hub.faults[file] = Fault(throttle_bps=16 * MiB)
    async with client(dl_server) as http:
        first, second = await asyncio.gather(pull(http, key), pull(http, "huggingface.co/acme/twice"))
        assert first["job_id"] == second["job_id"]
        events = await pull_and_wait(http, key)  # a third ask joins too, and follows it to the end
    assert events[-1]["status"] == "completed" and events[-1]["job_id"] == first["job_id"]
    assert len(data) <= hub.bytes_sent(file) <= len(data) + SLACK


async def test_two_keys_naming_one_file_transfer_it_once(hub, dl_server):
    data = gguf_bytes(payload=24 * MiB, seed=9)
    hub.add_hf_repo("bartowski/Qwen2.5-7B-Instruct-GGUF", {"Qwen2.5-7B-Instruct-Q4_K_M.gguf": data})
    hub.faults["Qwen2.5-7B-Instruct-Q4_K_M.gguf"] = Fault(throttle_bps=16 * MiB)
    async with client(dl_server) as http:
        short, full = await asyncio.gather(pull(http, "qwen"), pull(http, "hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF"))
        assert short["job_id"] != full["job_id"]
        done = [
            await collect(http, lambda ev: ev[-1][1]["status"] in ("completed", "error"), model=job["job_id"])
            for job in (short, full)
        ]
        assert [ev[-1][1]["status"] for ev in done] == ["completed", "completed"]
        assert len(data) <= hub.bytes_sent("Qwen2.5-7B-Instruct-Q4_K_M.gguf") <= len(data) + SLACK
        names = ("qwen:Q4_K_M", "hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M")
        assert {installed_digest(dl_server, n) for n in names} == {f"sha256-{sha(data)}"}
        # deleting one keeps the blob the other uses
        deleted = await http.request("DELETE", "/api/models/delete", json={"model_key": "qwen"})
        assert deleted.status_code == 200 and deleted.json()["removed_blobs"] == []
        listed = [m["name"] for m in (await http.get("/api/models")).json()["models"]]
        assert names[1] in listed and names[0] not in listed
        deleted = await http.delete(f"/api/models/{names[1]}")
        assert deleted.json()["removed_blobs"] == [f"sha256-{sha(data)}"]
    assert_clean(dl_server)


# -- disk pre-check and queue ----------------------------------------------------------------------------------


async def test_not_enough_disk_is_refused_up_front(hub, download_settings):
    _, file, key = add_model(hub, "huge", 1 * MiB)
    with serving(download_settings(disk_reserve_mb=1 << 40)) as server:
        async with client(server) as http:
            refused = await http.post("/api/models/download", json={"model_key": key})
    assert refused.status_code == 507, refused.text
    error = refused.json()["error"]
    assert error["code"] == "insufficient_storage" and "GB" in error["message"] and error["free_bytes"] > 0
    assert hub.bytes_sent(file) == 0
    assert_clean(server)


async def test_one_download_at_a_time_queues_the_next(hub, download_settings):
    _, first_file, first_key = add_model(hub, "ahead", 8 * MiB, seed=4)
    _, second_file, second_key = add_model(hub, "behind", 1 * MiB, seed=5)
    hub.faults[first_file] = Fault(throttle_bps=8 * MiB)
    with serving(download_settings(max_concurrent_downloads=1)) as server:
        async with client(server) as http:
            first = await pull(http, first_key)
            second = await pull(http, second_key)
            assert second["status"] == "queued"

            def both_done(events) -> bool:
                final = {d["job_id"] for k, d in events if k == "progress" and d["status"] == "completed"}
                return {first["job_id"], second["job_id"]} <= final

            events = [d for kind, d in await collect(http, both_done) if kind == "progress"]
    ids = [d["job_id"] for d in events]
    first_done = next(i for i, d in enumerate(events) if d["job_id"] == first["job_id"] and d["status"] == "completed")
    second_started = next(
        i for i, d in enumerate(events) if d["job_id"] == second["job_id"] and d["status"] != "queued"
    )
    assert second_started > first_done, [(d["name"], d["status"]) for d in events]
    assert first["job_id"] in ids and hub.bytes_sent(second_file) > 0
    for job in (first, second):
        assert_honest([d for d in events if d["job_id"] == job["job_id"]])


# -- the progress stream ---------------------------------------------------------------------------------------


async def test_progress_stream_for_late_and_many_subscribers(hub, dl_server):
    data, file, key = add_model(hub, "watched", 16 * MiB)
    hub.faults[file] = Fault(throttle_bps=3 * MiB)  # 8 MiB segments over two connections: about 3 s

    def ended(events) -> bool:
        return events[-1][0] == "progress" and events[-1][1]["status"] in ("completed", "error", "cancelled")

    async with client(dl_server) as http:
        job = await pull(http, key)
        stamps = [[] for _ in range(3)]
        watchers = [asyncio.create_task(collect(http, ended, model=key, stamps=stamps[i])) for i in range(3)]
        await until(lambda: hub.bytes_sent(file) >= 4 * MiB, what="bytes to flow")
        late = await collect(http, ended, model=job["job_id"])
        results = await asyncio.gather(*watchers)
        after = await collect(http, lambda ev: True, model=key)  # after the end: the final state at once
    assert late[0][1]["status"] == "downloading" and late[0][1]["downloaded_bytes"] > 0
    for events in [late, *results]:
        progress = [d for kind, d in events if kind == "progress"]
        assert progress[-1]["status"] == "completed" and progress[-1]["downloaded_bytes"] == len(data)
        assert_honest(progress)
        assert {d["job_id"] for d in progress} == {job["job_id"]}
        for field in ("model", "percent", "speed_mbps", "eta_seconds", "status", "downloaded_bytes", "total_bytes"):
            assert field in progress[0]
    assert any(d["speed_mbps"] > 0 for kind, d in results[0])
    for arrivals in stamps:  # at most about ten events a second
        elapsed = arrivals[-1] - arrivals[0]
        assert len(arrivals) <= 10 * elapsed + 5, (len(arrivals), elapsed)
    assert after[0][1]["status"] == "completed" and after[0][1]["percent"] == 100.0
