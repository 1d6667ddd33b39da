"""Find an installed model by its name or by the key it was pulled with."""

from __future__ import annotations

from jarvis.errors import Conflict, ModelNotFound
from jarvis.models.refs import ollama_model_name, parse_model_key
from jarvis.models.registries.url import plan_url
from jarvis.models.store import Manifest, ModelStore


def find_installed(store: ModelStore, key: str, quantization: str | None = None) -> Manifest:
    """Raises ModelNotFound, Conflict (several variants match), InvalidInput (malformed key)."""
    exact = store.get(key)
    if exact and quantization is None:
        return exact
    ref = parse_model_key(key, quantization)
    if ref.source == "bundled":
        names = [ref.key]
    elif ref.source == "ollama":
        names = [ollama_model_name(ref.repo_name, ref.tag_name)]
    elif ref.source == "url":
        names = [plan_url(ref).name]
    elif ref.tag:
        names = [f"{ref.name_prefix}:{ref.tag}"]
    else:
        names = [m.name for m in store.list() if m.name.startswith(f"{ref.name_prefix}:")]
    found = [m for name in names if (m := store.get(name))]
    if not found:
        raise ModelNotFound(f"model {key!r} is not installed")
    if len(found) > 1:
        raise Conflict(
            f"{key!r} matches several installed variants: {', '.join(m.name for m in found)}; name one",
            details={"matches": [m.name for m in found]},
        )
    return found[0]
