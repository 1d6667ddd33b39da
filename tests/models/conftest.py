"""Fixtures for the download tests: a test hub on loopback and a JARVIS server pointed at it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import fresh_store
from tests.support.live import LiveServer


@pytest.fixture
def download_settings(make_settings, tmp_path, models_dir, hub):
    def make(**overrides):
        values = {
            "models_path": fresh_store(tmp_path / f"store-{len(list(tmp_path.glob('store-*')))}", models_dir),
            "hf_endpoint": hub.url,
            "ollama_registry": hub.url,
            "allow_insecure_urls": True,
            "load_on_start": False,
            "download_stall_seconds": 1.0,
            "download_backoff_seconds": 0.05,
            "disk_reserve_mb": 0,
        }
        values.update(overrides)
        return make_settings(**values)

    return make


@pytest.fixture
def dl_server(download_settings):
    server = LiveServer(download_settings()).start()
    yield server
    server.stop()


def read_manifest(store_root: Path, name: str) -> dict:
    from urllib.parse import quote

    return json.loads((store_root / "manifests" / f"{quote(name, safe='')}.json").read_text())
