"""Sampler settings: the request wins, then the model's own (GGUF keys, Ollama params), then
Ollama's defaults."""

from __future__ import annotations

from jarvis.engines.base import GenerationOptions
from jarvis.engines.llama_cpp.sampling import OLLAMA_DEFAULTS, model_defaults, resolve


def test_ollamas_defaults_when_nobody_says_otherwise():
    sampling = resolve(GenerationOptions())
    assert (sampling.temperature, sampling.top_k, sampling.top_p, sampling.repeat_penalty, sampling.repeat_last_n) == (
        0.8,
        40,
        0.9,
        1.1,
        64,
    )
    assert sampling == OLLAMA_DEFAULTS and not sampling.greedy


def test_the_models_own_settings_beat_the_defaults_and_the_request_beats_both():
    model = model_defaults(
        {"general.sampling.temp": 0.7, "general.sampling.top_k": 20, "general.sampling.top_p": 0.8, "other.key": 3},
        {"repeat_penalty": 1.05, "top_k": 30, "stop": ["<|im_end|>"], "temperature": True},
    )
    assert model == {"temperature": 0.7, "top_k": 30, "top_p": 0.8, "repeat_penalty": 1.05}
    sampling = resolve(GenerationOptions(temperature=0, top_p=0.5), model)
    assert (sampling.temperature, sampling.top_k, sampling.top_p, sampling.repeat_penalty) == (0.0, 30, 0.5, 1.05)
    assert sampling.greedy


def test_request_penalties_and_seed_are_taken():
    sampling = resolve(GenerationOptions(seed=7, repeat_penalty=1.0, repeat_last_n=-1, presence_penalty=0.5))
    assert (sampling.seed, sampling.repeat_penalty, sampling.repeat_last_n, sampling.presence_penalty) == (
        7,
        1.0,
        -1,
        0.5,
    )
