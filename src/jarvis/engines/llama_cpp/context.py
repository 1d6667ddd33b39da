"""A GGUF opened for generation: llama.cpp's model and one context with a KV-cache stream per
slot, sized to fit this machine.

The context holds `slots` sequences of `n_ctx` tokens each (llama.cpp's non-unified KV cache:
each sequence its own stream, so one chat's cache never depends on where the others' lie,
and a chat alone gives the same greedy text as llama-cpp-python alone). Its memory is
weights + slots x n_ctx x the model's KV bytes per token + runtime (models/fit.py); settings
that would not fit are refused before llama.cpp allocates anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jarvis.engines.llama_cpp.generation import Vocabulary
from jarvis.engines.llama_cpp.prompt import ChatPrompt
from jarvis.errors import ModelLoadError
from jarvis.models.fit import RUNTIME_OVERHEAD

DEFAULT_SLOTS = 4  # as llama-server's --parallel default; fewer where memory is short
BATCH_TOKENS = 512  # tokens one decode step takes at most (llama-cpp-python's n_batch)
SLOT_MEMORY_SHARE = 0.5  # the default slot count keeps the KV cache within this share of free RAM


class ContextTooLarge(ModelLoadError):
    """JARVIS_PARALLEL x JARVIS_N_CTX would not fit in memory."""

    code = "context_too_large"


@dataclass
class Runtime:
    model: Any  # llama_cpp._internals.LlamaModel (llama-cpp-python ships no type stubs)
    ctx: Any  # llama_cpp._internals.LlamaContext
    slots: int
    n_ctx: int  # tokens each slot holds
    reuse_prefix: bool  # whether a prompt may continue from a slot's cached tokens
    prompt: ChatPrompt
    vocab: Vocabulary

    def tokenize(self, text: str, *, add_bos: bool, special: bool) -> list[int]:
        return self.model.tokenize(text.encode(), add_bos, special)

    def close(self) -> None:
        self.ctx.close()
        self.model.close()


def plan_slots(
    meta: dict, path: Path, *, n_ctx: int, slots: int | None, memory_limit: int | None, available: int
) -> tuple[int, int]:
    """(slots, tokens a slot) for a model: `slots` as asked, else DEFAULT_SLOTS halved until
    their cache fits SLOT_MEMORY_SHARE of the `available` memory. Raises ContextTooLarge
    when the asked-for slots do not fit `memory_limit`."""
    per_slot = min(n_ctx, meta.get("context_length") or n_ctx)
    per_token = meta.get("kv_bytes_per_token") or path.stat().st_size // 4 // 4096  # fit.py's guess
    weights = path.stat().st_size
    if slots is None:
        slots = DEFAULT_SLOTS
        while slots > 1 and slots * per_slot * per_token > available * SLOT_MEMORY_SHARE:
            slots //= 2
    needed = weights + slots * per_slot * per_token + RUNTIME_OVERHEAD
    if memory_limit is not None and needed > memory_limit:
        raise ContextTooLarge(
            f"{slots} slots of {per_slot} tokens need about {needed / 1e9:.2f} GB ({weights / 1e9:.2f} GB of weights, "
            f"{slots * per_slot * per_token / 1e9:.2f} GB of context cache) and the memory limit is "
            f"{memory_limit / 1e9:.2f} GB: lower JARVIS_PARALLEL or JARVIS_N_CTX",
            details={"needed_bytes": needed, "limit_bytes": memory_limit, "slots": slots, "n_ctx": per_slot},
        )
    return slots, per_slot


def open_runtime(path: Path, *, slots: int, n_ctx: int, n_threads: int | None) -> Runtime:
    """Load `path` into llama.cpp with a context of `slots` x `n_ctx` tokens. Blocking."""
    import llama_cpp
    from llama_cpp import _internals
    from llama_cpp._logger import set_verbose

    set_verbose(False)  # llama.cpp's own log lines stay off the server's output
    model_params = _internals.LlamaModel.default_params()
    model = _internals.LlamaModel(path_model=str(path), params=model_params, verbose=False)
    try:
        reuse = _prefix_reusable(model)
        params = _internals.LlamaContext.default_params()
        params.n_ctx = slots * n_ctx
        params.n_seq_max = slots
        params.kv_unified = False  # a stream per slot (see the module docstring)
        params.n_batch = params.n_ubatch = BATCH_TOKENS
        params.n_threads = params.n_threads_batch = n_threads or os.cpu_count() or 1
        # as llama-cpp-python's Llama: flash attention off, so greedy text is the same as there
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        # sliding-window models keep every position, so a slot can be cut back to a prefix
        params.swa_full = reuse
        ctx = _internals.LlamaContext(model=model, params=params, verbose=False)
    except Exception:
        model.close()
        raise
    metadata = model.metadata()
    prompt = ChatPrompt(
        metadata.get("tokenizer.chat_template"),
        eos_token=model.token_get_text(model.token_eos()),
        bos_token=model.token_get_text(model.token_bos()),
    )
    return Runtime(model, ctx, slots, n_ctx, reuse, prompt, Vocabulary(model))


def _prefix_reusable(model: Any) -> bool:
    """Whether a prompt may continue from a slot's cached tokens: not for recurrent or hybrid
    models, whose state cannot be cut back to a prefix; those evaluate every prompt afresh.
    Sliding-window models (Gemma 3) can, with the full-size SWA cache (swa_full)."""
    import llama_cpp

    return not (llama_cpp.llama_model_is_recurrent(model.model) or llama_cpp.llama_model_is_hybrid(model.model))
