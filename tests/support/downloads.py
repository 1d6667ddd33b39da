"""Helpers for the download tests: start a pull, follow its progress stream, poll with a bound,
and look for anything a download may have left behind in the store."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

from jarvis.config import Settings
from tests.models.test_downloads import wait_done
from tests.support.live import LiveServer

TERMINAL = ("completed", "cancelled", "error")


@contextmanager
def serving(settings: Settings):
    server = LiveServer(settings).start()
    try:
        yield server
    finally:
        server.stop()


async def pull(http: httpx.AsyncClient, model_key: str, quantization: str | None = None) -> dict:
    """POST /api/models/download; asserts the 202 and returns the job's snapshot."""
    body = {"model_key": model_key} if quantization is None else {"model_key": model_key, "quantization": quantization}
    response = await http.post("/api/models/download", json=body)
    assert response.status_code == 202, response.text
    return response.json()


async def pull_and_wait(http: httpx.AsyncClient, model_key: str, quantization: str | None = None) -> list[dict]:
    """Pull and follow the job to its end; returns its progress events (checked to be honest)."""
    job = await pull(http, model_key, quantization)
    events = await wait_done(http, job["job_id"])
    assert_honest(events)
    return events


def assert_honest(events: list[dict]) -> None:
    """Percent and bytes never move backwards; a finished job says 100 %."""
    percents = [e["percent"] for e in events]
    assert percents == sorted(percents), percents
    done = [e["downloaded_bytes"] for e in events]
    assert done == sorted(done), done
    if events and events[-1]["status"] == "completed":
        assert events[-1]["percent"] == 100.0


async def until(
    predicate: Callable[[], object], *, timeout: float = 60.0, interval: float = 0.05, what: str = ""
) -> object:
    """Poll `predicate` until it returns something truthy (bounded); returns that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or predicate}"
        await asyncio.sleep(interval)


async def snapshot_of(http: httpx.AsyncClient, job_id: str) -> dict:
    """The current state of one job: the first event a late subscriber gets."""
    async with aconnect_sse(http, "GET", "/api/models/download/progress", params={"model": job_id}) as source:
        async for event in source.aiter_sse():
            return json.loads(event.data)
    raise AssertionError("the progress stream ended without an event")


async def collect(
    http: httpx.AsyncClient,
    done: Callable[[list[tuple[str, dict]]], bool],
    *,
    model: str | None = None,
    stamps: list[float] | None = None,
) -> list[tuple[str, dict]]:
    """Every `(event, data)` of the progress stream (optionally `?model=`) until `done(events)`;
    `stamps` gets the arrival time of each."""
    events: list[tuple[str, dict]] = []
    params = {"model": model} if model else {}
    async with aconnect_sse(http, "GET", "/api/models/download/progress", params=params) as source:
        async for event in source.aiter_sse():
            events.append((event.event, json.loads(event.data)))
            if stamps is not None:
                stamps.append(time.monotonic())
            if done(events):
                return events
    raise AssertionError(f"the progress stream ended early: {events}")


def leftovers(store: Path) -> list[str]:
    """Partial files, transfer state and job files: what a finished, failed or cancelled
    download must not leave in the store."""
    blobs = [p.name for p in (store / "blobs").iterdir() if not p.name.startswith("sha256-") or "." in p.name]
    jobs = [f"jobs/{p.name}" for p in (store / "jobs").iterdir()]
    return sorted(blobs + jobs)


def blob_names(store: Path) -> set[str]:
    return {p.name for p in (store / "blobs").iterdir()}


def manifest_names(store: Path) -> set[str]:
    return {p.name for p in (store / "manifests").iterdir()}
