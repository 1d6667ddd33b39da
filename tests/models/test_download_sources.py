"""Every source a model_key can name, pulled through the API from the local hub: HuggingFace repos
(quantizations, shortcuts, key spellings, private and gated repos), the Ollama registry (with
its bearer-token flow), plain URLs, split GGUFs, and the real bundled model end to end."""

from __future__ import annotations

import hashlib

import pytest

from jarvis.models.bundled import BUNDLED_MODELS
from jarvis.models.store import ModelStore
from tests.models.conftest import read_manifest
from tests.support.clients import client
from tests.support.downloads import blob_names, leftovers, pull, pull_and_wait, serving
from tests.support.gguf_files import gguf_bytes
from tests.support.hub import Hub
from tests.support.proxy import forward_proxy

MULTI = "acme/multi-GGUF"
QWEN = "bartowski/Qwen2.5-7B-Instruct-GGUF"
MISTRAL = "second-state/Mistral-Nemo-Instruct-2407-GGUF"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def installed(models: list[dict]) -> dict[str, dict]:
    return {m["name"]: m for m in models if m["name"] not in BUNDLED_MODELS}


# -- HuggingFace ---------------------------------------------------------------------------------------


@pytest.fixture
def multi(hub):
    """A repo with five quantizations, plus files that are not variants."""
    files = {
        "multi-Q8_0.gguf": gguf_bytes(file_type=7, payload=3 << 20, seed=8),
        "multi-Q4_K_M.gguf": gguf_bytes(file_type=15, payload=1 << 20, seed=4),
        "multi-Q5_K_M.gguf": gguf_bytes(file_type=17, payload=2 << 20, seed=5),
        "multi-IQ2_XS.gguf": gguf_bytes(file_type=20, payload=1 << 19, seed=2),
        "multi-F16.gguf": gguf_bytes(file_type=1, payload=4 << 20, seed=16),
        "mmproj-multi-f16.gguf": gguf_bytes(arch="clip", seed=99),
        "multi.gguf": gguf_bytes(seed=100),  # no quantization in its name: not offered
        "README.md": b"# multi\n",
        "config.json": b"{}",
    }
    return files, hub.add_hf_repo(MULTI, files)


async def test_variants_are_the_real_files_recommended_first(hub, dl_server, multi):
    files, repo = multi
    async with client(dl_server) as http:
        answer = await http.get("/api/models/variants", params={"model_key": f"hf.co/{MULTI}"})
        only = await http.get("/api/models/variants", params={"model_key": f"hf.co/{MULTI}", "quantization": "q8_0"})
    assert answer.status_code == 200, answer.text
    variants = answer.json()["variants"]
    assert [v["quantization"] for v in variants] == ["Q4_K_M", "Q5_K_M", "Q8_0", "IQ2_XS", "F16"]
    for variant in variants:
        name = f"multi-{variant['quantization']}.gguf"
        assert variant["file"] == name and variant["files"] == [name]
        assert variant["size"] == len(files[name])
        assert variant["sha256"] == sha(files[name]) == repo.files[name].sha256
        assert variant["url"] == repo.files[name].url
        assert variant["recommended"] is (variant["quantization"] == "Q4_K_M")
    assert [v["quantization"] for v in only.json()["variants"]] == ["Q8_0"]
    assert not [r for r in hub.requests if r.path.startswith("/cdn/")]  # listing fetched no file


async def test_quantization_picks_the_variant(hub, dl_server, multi):
    files, _ = multi
    async with client(dl_server) as http:
        events = await pull_and_wait(http, f"hf.co/{MULTI}", "q8_0")
        by_suffix = await pull_and_wait(http, f"hf.co/{MULTI}:Q5_K_M")
        default = await pull_and_wait(http, f"huggingface.co/{MULTI}")
        models = installed((await http.get("/api/models")).json()["models"])
    assert [e[-1]["status"] for e in (events, by_suffix, default)] == ["completed"] * 3
    assert set(models) == {f"hf.co/{MULTI}:{q}" for q in ("Q8_0", "Q5_K_M", "Q4_K_M")}
    q8 = models[f"hf.co/{MULTI}:Q8_0"]
    assert q8["digest"] == "sha256-" + sha(files["multi-Q8_0.gguf"])
    assert q8["size"] == len(files["multi-Q8_0.gguf"]) and q8["quantization"] == "Q8_0"
    assert (q8["source"], q8["repo"], q8["file"], q8["format"]) == ("hf", MULTI, "multi-Q8_0.gguf", "gguf")
    assert (q8["family"], q8["context_length"], q8["parameter_count"]) == ("llama", 2048, 64 * 32)
    assert q8["verified"] is True and q8["installed_at"] and q8["status"] == "installed"
    for name in ("multi-IQ2_XS.gguf", "multi-F16.gguf", "mmproj-multi-f16.gguf"):
        assert hub.bytes_sent(name) == 0
    assert hub.bytes_sent("multi-Q8_0.gguf") == len(files["multi-Q8_0.gguf"])
    assert leftovers(dl_server.settings.models_dir) == []


async def test_catalog_shortcuts_pull_from_their_repos(hub, dl_server):
    qwen = {
        "Qwen2.5-7B-Instruct-Q4_K_M.gguf": gguf_bytes(file_type=15, payload=1 << 20, seed=70),
        "Qwen2.5-7B-Instruct-Q8_0.gguf": gguf_bytes(file_type=7, payload=1 << 20, seed=71),
    }
    hub.add_hf_repo(QWEN, qwen)
    hub.add_hf_repo(MISTRAL, {"Mistral-Nemo-Instruct-2407-Q6_K.gguf": gguf_bytes(file_type=18, seed=72)})
    async with client(dl_server) as http:
        mistral = (await http.get("/api/models/variants", params={"model_key": "mistral"})).json()["variants"]
        assert [(v["quantization"], v["file"]) for v in mistral] == [("Q6_K", "Mistral-Nemo-Instruct-2407-Q6_K.gguf")]
        assert mistral[0]["url"].startswith(f"{hub.url}/{MISTRAL}/resolve/")
        first = await pull_and_wait(http, "qwen")
        second = await pull_and_wait(http, "Qwen:q8_0")  # MODEL:QUANT, as `jarvis pull` takes it
        models = installed((await http.get("/api/models")).json()["models"])
        available = {m["id"]: m for m in (await http.get("/api/models/available")).json()["models"]}
    assert first[-1]["status"] == second[-1]["status"] == "completed"
    assert first[-1]["name"] == "qwen:Q4_K_M" and second[-1]["name"] == "qwen:Q8_0"
    assert models["qwen:Q4_K_M"]["repo"] == QWEN
    assert models["qwen:Q4_K_M"]["digest"] == "sha256-" + sha(qwen["Qwen2.5-7B-Instruct-Q4_K_M.gguf"])
    assert available["qwen"]["status"] == "installed"
    assert sorted(available["qwen"]["installed"]) == ["qwen:Q4_K_M", "qwen:Q8_0"]
    assert available["mistral"]["status"] == "not_downloaded"


async def test_every_hf_key_spelling_names_the_same_model(hub, dl_server, multi):
    files, _ = multi
    spellings = [f"hf.co/{MULTI}", f"huggingface.co/{MULTI}", f"https://huggingface.co/{MULTI}", f"HF.co/{MULTI}/"]
    async with client(dl_server) as http:
        for key in spellings:
            variants = (await http.get("/api/models/variants", params={"model_key": key})).json()["variants"]
            assert variants[0]["file"] == "multi-Q4_K_M.gguf"
        events = await pull_and_wait(http, f"https://huggingface.co/{MULTI}")
        again = [await pull(http, key) for key in spellings]  # installed already: nothing to fetch
    assert events[-1]["status"] == "completed" and events[-1]["name"] == f"hf.co/{MULTI}:Q4_K_M"
    assert [j["status"] for j in again] == ["completed"] * 4
    assert {j["name"] for j in again} == {f"hf.co/{MULTI}:Q4_K_M"}
    assert hub.bytes_sent("multi-Q4_K_M.gguf") == len(files["multi-Q4_K_M.gguf"])


async def test_private_repo_sends_the_token_to_the_hub_only(tmp_path, download_settings):
    data = gguf_bytes(payload=9 << 20, seed=31)
    with Hub(tmp_path / "private-hub", cdn_host="localhost") as hub:  # the CDN on another origin
        hub.token = "hf_private_token"
        hub.add_hf_repo("acme/private-GGUF", {"private-Q4_K_M.gguf": data}, private=True)

        with serving(download_settings(hf_endpoint=hub.url)) as anonymous:
            async with client(anonymous) as http:
                refused = await http.post("/api/models/download", json={"model_key": "hf.co/acme/private-GGUF"})
            assert refused.status_code == 404, refused.text
            assert refused.json()["error"]["code"] == "model_not_found"
            assert "private" in refused.json()["error"]["message"]
            assert "HF_TOKEN" in refused.json()["error"]["message"]
            assert leftovers(anonymous.settings.models_dir) == []

        hub.reset()
        with serving(download_settings(hf_endpoint=hub.url, hf_token="hf_private_token")) as server:
            async with client(server) as http:
                events = await pull_and_wait(http, "hf.co/acme/private-GGUF")
                models = installed((await http.get("/api/models")).json()["models"])
    assert events[-1]["status"] == "completed", events[-1]
    assert models["hf.co/acme/private-GGUF:Q4_K_M"]["digest"] == f"sha256-{sha(data)}"
    api = [r for r in hub.requests if r.path.startswith(("/api/", "/acme/"))]
    cdn = [r for r in hub.requests if r.path.startswith("/cdn/")]
    assert api and cdn
    assert all(r.headers.get("authorization") == "Bearer hf_private_token" for r in api)
    assert all("authorization" not in r.headers for r in cdn), [r.headers for r in cdn]
    assert {r.headers["host"].split(":")[0] for r in cdn} == {"localhost"}


async def test_gated_repo_says_so_and_needs_a_granted_token(hub, download_settings):
    data = gguf_bytes(payload=1 << 20, seed=41)
    hub.token = "hf_granted"
    hub.add_hf_repo("acme/gated-GGUF", {"gated-Q4_K_M.gguf": data}, gated=True)
    for token, hint in ((None, "HUGGINGFACE_TOKEN"), ("hf_not_granted", "granted")):
        with serving(download_settings(hf_token=token)) as server:
            async with client(server) as http:
                refused = await http.post("/api/models/download", json={"model_key": "hf.co/acme/gated-GGUF"})
            assert refused.status_code == 403, refused.text
            error = refused.json()["error"]
            assert error["code"] == "upstream_auth" and "gated" in error["message"] and hint in error["message"]
            assert leftovers(server.settings.models_dir) == []
            assert not ModelStore(server.settings.models_dir).get("hf.co/acme/gated-GGUF:Q4_K_M")
    assert hub.bytes_sent("gated-Q4_K_M.gguf") == 0
    with serving(download_settings(hf_token="hf_granted")) as server:
        async with client(server) as http:
            events = await pull_and_wait(http, "hf.co/acme/gated-GGUF")
    assert events[-1]["status"] == "completed", events[-1]


# -- Ollama registry ------------------------------------------------------------------------------------


@pytest.mark.parametrize("registry_auth", [False, True])
async def test_ollama_registry_in_every_spelling(hub, dl_server, registry_auth):
    hub.registry_auth = registry_auth
    models = {}
    for tag, seed in (("1b", 51), ("2b", 52), ("3b", 53)):
        models[tag] = gguf_bytes(payload=1 << 20, seed=seed)
        hub.add_ollama_model(
            "library/tiny", tag, model=models[tag], template="{{ .Prompt }}", params={"stop": ["<end>"]}
        )
    models["ns"] = gguf_bytes(payload=1 << 20, seed=54)
    hub.add_ollama_model("someone/tiny", "1b", model=models["ns"])
    keys = {
        "ollama.ai/library/tiny:1b": ("tiny:1b", "1b"),
        "registry.ollama.ai/library/tiny:2b": ("tiny:2b", "2b"),
        "tiny:3b": ("tiny:3b", "3b"),
        "ollama.com/someone/tiny:1b": ("someone/tiny:1b", "ns"),
    }
    async with client(dl_server) as http:
        results = {key: await pull_and_wait(http, key) for key in keys}
        listed = installed((await http.get("/api/models")).json()["models"])
    for key, (name, which) in keys.items():
        assert results[key][-1]["status"] == "completed", results[key][-1]
        assert results[key][-1]["name"] == name
        model = listed[name]
        assert model["digest"] == f"sha256-{sha(models[which])}" and model["source"] == "ollama"
        assert model["verified"] is True and model["size"] == len(models[which])
    token_requests = [r for r in hub.requests if r.path == "/token"]
    blob_requests = [r for r in hub.requests if "/blobs/" in r.path]
    assert blob_requests
    if registry_auth:
        assert token_requests
        assert all(r.headers.get("authorization", "").startswith("Bearer reg-") for r in blob_requests)
    else:
        assert not token_requests


async def test_pulling_an_installed_name_again_updates_it_only_when_the_registry_moved_on(hub, dl_server):
    """As `ollama pull`: the same files are not fetched again; a tag that now names other
    files is downloaded and replaces the installed model, whose old file goes."""
    old, new = gguf_bytes(payload=1 << 20, seed=71), gguf_bytes(payload=1 << 20, seed=72)
    hub.add_ollama_model("library/fresh", "1b", model=old)
    store = dl_server.settings.models_dir
    async with client(dl_server) as http:
        assert (await pull_and_wait(http, "fresh:1b"))[-1]["status"] == "completed"
        fetched = len([r for r in hub.requests if "/blobs/" in r.path])
        assert (await pull_and_wait(http, "fresh:1b"))[-1]["status"] == "completed"
        assert len([r for r in hub.requests if "/blobs/" in r.path]) == fetched  # up to date: nothing fetched
        hub.add_ollama_model("library/fresh", "1b", model=new)  # the tag moves on
        events = await pull_and_wait(http, "fresh:1b")
        listed = installed((await http.get("/api/models")).json()["models"])
    assert events[-1]["status"] == "completed", events[-1]
    assert listed["fresh:1b"]["digest"] == f"sha256-{sha(new)}"
    assert f"sha256-{sha(old)}" not in blob_names(store) and f"sha256-{sha(new)}" in blob_names(store)
    assert leftovers(store) == []


# -- plain URLs -------------------------------------------------------------------------------------------


async def test_plain_url_is_installed_unverified(hub, dl_server):
    data = gguf_bytes(file_type=15, payload=9 << 20, seed=61)
    served = hub.add_file("/files/plain-Q4_K_M.gguf", data)
    async with client(dl_server) as http:
        events = await pull_and_wait(http, served.url)
        models = installed((await http.get("/api/models")).json()["models"])
    assert events[-1]["status"] == "completed", events[-1]
    model = models["plain-Q4_K_M"]
    assert model["verified"] is False  # no registry published a digest: this one is computed
    assert model["digest"] == f"sha256-{sha(data)}" and model["size"] == len(data)
    assert (model["source"], model["url"], model["quantization"]) == ("url", served.url, "Q4_K_M")
    assert hub.bytes_sent("/files/plain-Q4_K_M.gguf") == len(data)
    assert leftovers(dl_server.settings.models_dir) == []


async def test_proxy_settings_send_the_registry_requests_through_the_proxy(hub, download_settings, monkeypatch):
    data = gguf_bytes(file_type=15, payload=1 << 20, seed=62)
    hub.add_hf_repo("acme/proxied-GGUF", {"proxied-Q4_K_M.gguf": data})
    # The Hub by a name only the proxy knows; this machine's own addresses (the server, the CDN) stay direct.
    with (
        forward_proxy(hub.url, monkeypatch, no_proxy="127.0.0.1,localhost") as seen,
        serving(download_settings(hf_endpoint="http://hub.example")) as server,
    ):
        async with client(server) as http:
            events = await pull_and_wait(http, "hf.co/acme/proxied-GGUF")
    assert events[-1]["status"] == "completed", events[-1]
    assert any(url.startswith("http://hub.example/api/models/acme/proxied-GGUF") for url in seen), seen
    assert hub.bytes_sent("proxied-Q4_K_M.gguf") == len(data)


# -- split GGUF ---------------------------------------------------------------------------------------------


async def test_split_gguf_is_one_model_of_three_files(hub, dl_server):
    parts = [gguf_bytes(file_type=7, payload=(1 << 20) + i, seed=80 + i) for i in range(3)]
    names = [f"Q8_0/big-Q8_0-0000{i + 1}-of-00003.gguf" for i in range(3)]
    files = dict(zip(names, parts, strict=False))
    files["big-Q4_K_M.gguf"] = gguf_bytes(file_type=15, seed=84)
    # an incomplete split is not offered
    files["big-Q6_K-00001-of-00002.gguf"] = gguf_bytes(file_type=18, seed=85)
    hub.add_hf_repo("acme/big-GGUF", files)
    async with client(dl_server) as http:
        variants = (await http.get("/api/models/variants", params={"model_key": "hf.co/acme/big-GGUF"})).json()[
            "variants"
        ]
        events = await pull_and_wait(http, "hf.co/acme/big-GGUF:Q8_0")
        models = installed((await http.get("/api/models")).json()["models"])
    assert [v["quantization"] for v in variants] == ["Q4_K_M", "Q8_0"]
    assert variants[1]["files"] == names and variants[1]["size"] == sum(map(len, parts))
    assert events[-1]["status"] == "completed", events[-1]
    assert events[-1]["total_bytes"] == sum(map(len, parts))
    assert list(models) == ["hf.co/acme/big-GGUF:Q8_0"]
    model = models["hf.co/acme/big-GGUF:Q8_0"]
    assert model["size"] == sum(map(len, parts)) and model["file"] == names[0]
    assert model["files"] == [
        {"file": n, "digest": f"sha256-{sha(p)}", "size": len(p)} for n, p in files.items() if n in names
    ]
    for name, data in zip(names, parts, strict=False):
        assert hub.bytes_sent(name) == len(data)
    store = dl_server.settings.models_dir
    first = ModelStore(store).model_path("hf.co/acme/big-GGUF:Q8_0")
    assert first.name == "big-Q8_0-00001-of-00003.gguf"
    assert sorted(p.name for p in first.parent.iterdir()) == [n.split("/")[1] for n in names]
    assert read_manifest(store, "hf.co/acme/big-GGUF:Q8_0")["quantization"] == "Q8_0"


# -- the real model, end to end --------------------------------------------------------------------------------


async def test_real_model_pulled_activated_and_chatted_with(hub, dl_server, bundled_path):
    size = bundled_path.stat().st_size
    served = hub.add_file("/files/gemma-e2e.gguf", str(bundled_path))
    hub.add_hf_repo("acme/gemma-GGUF", {"gemma-3-270m-it-Q4_K_M.gguf": str(bundled_path)})
    async with client(dl_server) as http:
        events = await pull_and_wait(http, served.url)
        assert events[-1]["status"] == "completed", events[-1]
        assert events[-1]["total_bytes"] == size
        # the same bytes from HF: the blob is in the store already, so nothing is fetched
        from_hf = await pull_and_wait(http, "hf.co/acme/gemma-GGUF")
        assert from_hf[-1]["status"] == "completed", from_hf[-1]
        assert hub.bytes_sent("gemma-3-270m-it-Q4_K_M.gguf") == 0
        activated = await http.post("/api/models/gemma-e2e/activate")
        assert activated.status_code == 200, activated.text
        assert (await http.get("/api/models/active")).json()["model"]["name"] == "gemma-e2e"
        reply = await http.post("/api/chat/messages", json={"message": "hi", "model": "gemma-e2e", "max_tokens": 4})
        assert reply.status_code == 200, reply.text
        assert reply.json()["model"] == "gemma-e2e" and reply.json()["status"] == "complete"
        assert reply.json()["completion_tokens"] >= 1
        models = installed((await http.get("/api/models")).json()["models"])
    # fetched once; on a busy machine a crawling connection's taken-over rest sends a little twice
    assert size <= hub.bytes_sent("/files/gemma-e2e.gguf") < 1.25 * size
    assert models["gemma-e2e"]["digest"] == models["hf.co/acme/gemma-GGUF:Q4_K_M"]["digest"]
    assert models["gemma-e2e"]["family"] == "gemma3" and models["gemma-e2e"]["verified"] is False
    assert models["hf.co/acme/gemma-GGUF:Q4_K_M"]["verified"] is True
    store = dl_server.settings.models_dir
    assert leftovers(store) == [] and len(blob_names(store)) == len(
        BUNDLED_MODELS
    )  # gemma's one blob behind three names


async def test_ollama_params_layer_sets_the_models_sampling_and_stops(hub, dl_server, bundled_path):
    """Ollama publishes sampler settings and stop words beside the weights (the params layer):
    they are kept with the model, shown by /api/show, and used when it answers."""
    params = {"temperature": 0, "top_k": 7, "repeat_penalty": 1.0, "stop": ["Paris"]}
    hub.add_ollama_model("library/tuned", "1b", model=str(bundled_path), params=params)
    async with client(dl_server) as http:
        events = await pull_and_wait(http, "tuned:1b")
        assert events[-1]["status"] == "completed", events[-1]
        shown = (await http.post("/api/show", json={"model": "tuned:1b"})).json()
        reply = await http.post(
            "/api/chat/messages", json={"message": "What is the capital of France?", "model": "tuned:1b"}
        )
    assert read_manifest(dl_server.settings.models_dir, "tuned:1b")["parameters"] == params
    assert "top_k 7" in shown["parameters"] and "temperature 0" in shown["parameters"]
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    # the base model answers "The capital of France is Paris."; the publisher's stop ends it before
    assert answer["content"] == "The capital of France is " and answer["finish_reason"] == "stop"
