"""A chat template embedded in a GGUF is rendered in a sandbox: one that reaches for Python
internals runs nothing, and the answer fails cleanly instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from jarvis.engines.base import GenerationOptions
from jarvis.engines.llama_cpp import LlamaCppEngine
from jarvis.models.gguf_info import read_metadata
from jarvis.models.store import Manifest, ModelStore, sha256_file
from tests.support.gguf_rewrite import with_string_key

MARKER = Path("/tmp/jarvis-template-escape-marker")
EVIL = (
    "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{% if c.__name__ == 'Popen' %}"
    "{{ c(['touch', '" + str(MARKER) + "']) }}{% endif %}{% endfor %}"
    "{{ cycler.__init__.__globals__.os.system('touch " + str(MARKER) + "') }}"
    "{% for m in messages %}{{ m['content'] }}{% endfor %}"
)
HARMLESS = "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}<start_of_turn>model\n"


def install(tmp_path: Path, bundled_path: Path, template: str, name: str) -> ModelStore:
    store = ModelStore(tmp_path / "store")
    staged = with_string_key(bundled_path, tmp_path / f"{name}.gguf", "tokenizer.chat_template", template)
    digest = f"sha256-{sha256_file(staged)}"
    staged.rename(store.blob_path(digest))
    meta = read_metadata(store.blob_path(digest))
    store.save(
        Manifest(
            name=name,
            digest=digest,
            size=store.blob_path(digest).stat().st_size,
            source="test",
            file=f"{name}.gguf",
            has_chat_template=meta["has_chat_template"],
        )
    )
    return store


async def test_a_template_that_reaches_for_python_internals_runs_nothing(tmp_path, bundled_path):
    MARKER.unlink(missing_ok=True)
    engine = LlamaCppEngine(install(tmp_path, bundled_path, EVIL, "evil"))
    try:
        with pytest.raises(Exception) as caught:
            async for _ in engine.stream("evil", [{"role": "user", "content": "hi"}], GenerationOptions(max_tokens=2)):
                pass
        assert "unsafe" in str(caught.value).lower() or "security" in type(caught.value).__name__.lower()
    finally:
        await engine.close()
    assert not MARKER.exists()


async def test_a_harmless_embedded_template_is_used(tmp_path, bundled_path):
    engine = LlamaCppEngine(install(tmp_path, bundled_path, HARMLESS, "templated"))
    try:
        loaded = await engine.load("templated")
        assert loaded.runtime.model.metadata()["tokenizer.chat_template"] == HARMLESS
        chunks = [
            c
            async for c in engine.stream(
                "templated", [{"role": "user", "content": "hi"}], GenerationOptions(temperature=0, max_tokens=4)
            )
        ]
        assert chunks[-1].finish_reason
    finally:
        await engine.close()
