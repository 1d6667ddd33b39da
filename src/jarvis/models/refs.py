"""What a `model_key` names: a catalog shortcut, a HuggingFace repo, an Ollama registry model,
or a URL of a GGUF file. Parsing refuses anything malformed before any request is made."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from jarvis.errors import InvalidInput
from jarvis.models.catalog import lookup
from jarvis.models.quant import is_quantization

_HF_PREFIXES = ("hf.co/", "huggingface.co/", "www.huggingface.co/")
_OLLAMA_PREFIXES = ("ollama.ai/", "ollama.com/", "registry.ollama.ai/", "www.ollama.com/")
_HF_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_OLLAMA_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,79}(/[a-z0-9][a-z0-9_.-]{0,79})?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_QUANT = re.compile(r"^[A-Za-z0-9_]{1,32}$")


@dataclass(frozen=True)
class ModelRef:
    key: str  # what the user asked for, as given
    source: str  # hf | ollama | url | bundled
    repo: str | None = None  # hf: ns/name; ollama: ns/name
    tag: str | None = None  # hf: the quantization asked for (or None: the recommended one); ollama: tag
    url: str | None = None

    @property
    def name_prefix(self) -> str:
        """How installed models from this ref are named (the quantization is appended for HF)."""
        catalog = lookup(self.key)
        if catalog and catalog.source == "hf":
            return catalog.key
        if self.source == "hf":
            return f"hf.co/{self.repo}"
        return self.key

    # The parts a source always has (the parser sets them), typed as such.
    @property
    def repo_name(self) -> str:
        return _present(self.repo, self.key, "repository")

    @property
    def tag_name(self) -> str:
        return _present(self.tag, self.key, "tag")

    @property
    def url_text(self) -> str:
        return _present(self.url, self.key, "URL")


def _present(value: str | None, key: str, what: str) -> str:
    if value is None:
        raise InvalidInput(f"{key!r} names no {what}")
    return value


def _check(pattern: re.Pattern, value: str, what: str) -> str:
    if ".." in value or not pattern.match(value):
        raise InvalidInput(f"malformed {what}: {value!r}")
    return value


def parse_model_key(model_key: str, quantization: str | None = None) -> ModelRef:
    """Raises InvalidInput for a key that names nothing we can fetch."""
    key = (model_key or "").strip()
    if not key or len(key) > 500 or any(ch.isspace() or ord(ch) < 32 for ch in key):
        raise InvalidInput(f"malformed model_key: {model_key!r}")
    if quantization is not None:
        _check(_QUANT, quantization, "quantization")
        quantization = quantization.upper()

    entry = lookup(key)
    shortcut, _, suffix = key.rpartition(":")
    if entry is None and is_quantization(suffix) and (base := lookup(shortcut)) and base.source == "hf":
        # `qwen:Q8_0` is a shortcut with a quantization (`jarvis pull MODEL[:QUANT]`);
        # `qwen:7b` stays an Ollama name:tag.
        entry, quantization = base, quantization or suffix.upper()
    if entry:
        if entry.source == "bundled":
            return ModelRef(key=entry.key, source="bundled")
        if entry.source == "hf":
            return ModelRef(key=entry.key, source="hf", repo=entry.repo, tag=quantization)
        return ModelRef(key=entry.key, source="ollama", repo=entry.repo, tag=quantization or entry.tag or "latest")

    lowered = key.lower()
    if lowered.startswith(("https://", "http://")):
        parts = urlsplit(key)
        host = (parts.hostname or "").lower()
        path = unquote(parts.path)
        if host in ("huggingface.co", "hf.co", "www.huggingface.co") and not path.lower().endswith(".gguf"):
            return _hf(path.strip("/"), key, quantization)
        if not host:
            raise InvalidInput(f"malformed URL: {key!r}")
        if not path.lower().endswith(".gguf"):
            raise InvalidInput("a model URL must point at a .gguf file")
        return ModelRef(key=key, source="url", url=key)
    for prefix in _HF_PREFIXES:
        if lowered.startswith(prefix):
            return _hf(key[len(prefix) :], key, quantization)
    for prefix in _OLLAMA_PREFIXES:
        if lowered.startswith(prefix):
            return _ollama(key[len(prefix) :], key, quantization)
    if "://" in key:
        raise InvalidInput(f"unsupported URL scheme in {key!r}; use https://")
    return _ollama(key, key, quantization)


def _hf(rest: str, key: str, quantization: str | None) -> ModelRef:
    repo, _, quant = rest.partition(":")
    repo = repo.strip("/")
    _check(_HF_REPO, repo, "HuggingFace repo (expected namespace/name)")
    if quant:
        _check(_QUANT, quant, "quantization")
    return ModelRef(key=key, source="hf", repo=repo, tag=quantization or (quant.upper() if quant else None))


def _ollama(rest: str, key: str, quantization: str | None) -> ModelRef:
    name, _, tag = rest.partition(":")
    name = name.strip("/").lower()
    if "/" not in name:
        name = f"library/{name}"
    _check(_OLLAMA_NAME, name, "Ollama model name")
    tag = quantization or tag or "latest"
    _check(_TAG, tag, "tag")
    return ModelRef(key=key, source="ollama", repo=name, tag=tag)


def ollama_model_name(repo: str, tag: str) -> str:
    """`library/gemma3` + `270m` → `gemma3:270m` (the name Ollama users know)."""
    name = repo.removeprefix("library/")
    return f"{name}:{tag}"
