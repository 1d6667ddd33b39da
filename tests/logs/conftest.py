"""Fixtures for the log tests: a database per backend, helpers."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from jarvis.storage.db import Database
from tests.conftest import BACKENDS


def marker() -> str:
    """A word no other record contains."""
    return f"mark{uuid.uuid4().hex[:16]}"


@pytest.fixture(params=BACKENDS)
async def database(request, make_settings):
    """A migrated database on each backend."""
    settings = make_settings(request.param)
    db = Database(settings.db_url)
    await db.migrate()
    yield db
    await db.close()


async def wait_for_records(http: httpx.AsyncClient, count: int, timeout: float = 20, **params) -> dict:
    """Poll `/api/logs` until at least `count` records match `params` (the writer flushes
    every half second)."""
    params.setdefault("limit", 1000)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await http.get("/api/logs", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        if len(body["records"]) >= count:
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"only {len(body['records'])} of {count} records for {params}")
        await asyncio.sleep(0.1)
