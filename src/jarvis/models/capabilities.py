"""What an installed model can do, for listings (`/api/models`, Ollama's `/api/tags`, `/api/show`).

A GGUF without a chat template is a base model: it continues text ("completion") but was
not trained to take turns, so it is labelled as such and chats with it use a plain
transcript. With a template it chats; when the template renders a tool list, it can call
tools. The template is read from the file's header once per blob (blobs never change).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jarvis.models.gguf_info import read_header
from jarvis.models.store import Manifest, ModelStore


def chat_template(store: ModelStore, manifest: Manifest) -> str:
    """The model's Jinja chat template ("" for a base model or an unreadable file)."""
    if not manifest.has_chat_template:
        return ""
    path = store.model_path(manifest.name)
    return _template(str(path), manifest.digest) if path else ""


def capabilities(store: ModelStore, manifest: Manifest) -> list[str]:
    """Ollama's capability names, plus `chat` for models that take turns."""
    template = chat_template(store, manifest)
    found = ["completion"]
    if template:
        found.append("chat")
        if "tools" in template:
            found.append("tools")
    return [*found, "embedding"]


def kind(manifest: Manifest) -> str:
    """`instruct` (has a chat template) or `base`."""
    return "instruct" if manifest.has_chat_template else "base"


@lru_cache(maxsize=128)
def _template(path: str, digest: str) -> str:  # digest: the cache key that changes with the file
    try:
        meta, _tensors = read_header(Path(path))
    except Exception:  # listing must not fail on one bad file; loading it will say why
        return ""
    template = meta.get("tokenizer.chat_template")
    return template if isinstance(template, str) else ""
