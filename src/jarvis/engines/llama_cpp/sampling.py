"""Which sampler settings an answer is generated with, and the llama.cpp sampler chain for them.

Each setting comes from the first of these that has it: the request, the model's own
parameters (an Ollama manifest's params layer, the GGUF's `general.sampling.*` keys), then
Ollama's documented defaults, so a model behaves here as it does under `ollama run`.
Temperature 0 is greedy: the most likely token every time (after the penalties), the same
answer for the same prompt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace
from typing import Any

from jarvis.engines.base import GenerationOptions


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    repeat_penalty: float = 1.1
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


OLLAMA_DEFAULTS = Sampling()
_NAMES = {f.name for f in fields(Sampling)}

# GGUF keys a model's author may set (llama.cpp's `general.sampling.*`), by our name.
GGUF_KEYS = {
    "temperature": "general.sampling.temp",
    "top_k": "general.sampling.top_k",
    "top_p": "general.sampling.top_p",
    "min_p": "general.sampling.min_p",
    "repeat_penalty": "general.sampling.penalty_repeat",
    "repeat_last_n": "general.sampling.penalty_last_n",
}


def model_defaults(gguf_metadata: dict, parameters: dict | None = None) -> dict:
    """The sampler settings a model brings: its GGUF keys, overridden by its Ollama params."""
    found = {
        name: gguf_metadata[key] for name, key in GGUF_KEYS.items() if isinstance(gguf_metadata.get(key), int | float)
    }
    for name, value in (parameters or {}).items():
        if name in _NAMES and isinstance(value, int | float) and not isinstance(value, bool):
            found[name] = value
    return found


def resolve(options: GenerationOptions, model: dict | None = None) -> Sampling:
    """The settings for one answer: request, then `model` (see model_defaults), then Ollama's."""
    chosen = {**(model or {})}
    for name in _NAMES:
        value = getattr(options, name, None)
        if value is not None:
            chosen[name] = value
    typed: dict[str, Any] = {k: _typed(k, v) for k, v in chosen.items()}
    return replace(OLLAMA_DEFAULTS, **typed)


def _typed(name: str, value: float) -> int | float:
    return int(value) if name in ("top_k", "repeat_last_n", "seed") else float(value)


def build_sampler(model: Any, sampling: Sampling, *, n_ctx: int, grammar: Any = None) -> Any:
    """A llama.cpp sampler chain for `sampling` on `model` (llama-cpp-python's LlamaModel;
    `n_ctx` the context one answer has): penalties first, then the grammar, then greedy or
    top-k → top-p → min-p → temperature → draw.

    Built here rather than through `Llama.generate` because the penalty window
    (`repeat_last_n`) is fixed per Llama object there, and each answer brings its own.
    """
    from llama_cpp import _internals

    sampler = _internals.LlamaSampler()
    last_n = n_ctx if sampling.repeat_last_n < 0 else sampling.repeat_last_n  # Ollama: -1 = the context
    if last_n and (sampling.repeat_penalty != 1.0 or sampling.presence_penalty or sampling.frequency_penalty):
        sampler.add_penalties(
            n_vocab=model.n_vocab(),
            penalty_last_n=last_n,
            penalty_repeat=sampling.repeat_penalty,
            penalty_freq=sampling.frequency_penalty,
            penalty_present=sampling.presence_penalty,
        )
    if grammar is not None:
        sampler.add_grammar(model, grammar)
    if sampling.greedy:
        sampler.add_greedy()
        return sampler
    if sampling.top_k > 0:
        sampler.add_top_k(sampling.top_k)
    if 0 < sampling.top_p < 1:
        sampler.add_top_p(sampling.top_p, 1)
    if sampling.min_p > 0:
        sampler.add_min_p(sampling.min_p, 1)
    sampler.add_temp(sampling.temperature)
    sampler.add_dist(sampling.seed if sampling.seed is not None else random.getrandbits(32))
    return sampler
