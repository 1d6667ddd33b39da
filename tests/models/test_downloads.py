"""Downloads through the API from a local hub: HuggingFace, Ollama registry, plain URLs."""

from __future__ import annotations

import json

import httpx
from httpx_sse import aconnect_sse

from tests.support.clients import client
from tests.support.gguf_files import gguf_bytes


async def wait_done(http: httpx.AsyncClient, model: str, timeout: float = 120) -> list[dict]:
    """Follow the progress stream of `model` until it ends; returns every progress event."""
    events = []
    async with aconnect_sse(http, "GET", "/api/models/download/progress", params={"model": model}) as source:
        async for event in source.aiter_sse():
            data = json.loads(event.data)
            events.append(data)
            if event.event == "progress" and data["status"] in ("completed", "cancelled", "error"):
                return events
    return events


async def test_pull_from_huggingface(hub, dl_server, bundled_path):
    hub.add_hf_repo(
        "acme/tiny-GGUF",
        {
            "tiny-Q8_0.gguf": gguf_bytes(file_type=7, payload=3 << 20),
            "tiny-Q4_K_M.gguf": gguf_bytes(file_type=15, payload=40 << 20),
            "README.md": b"# tiny",
        },
    )
    async with client(dl_server) as http:
        variants = (await http.get("/api/models/variants", params={"model_key": "hf.co/acme/tiny-GGUF"})).json()
        assert [v["quantization"] for v in variants["variants"]] == ["Q4_K_M", "Q8_0"]
        started = await http.post("/api/models/download", json={"model_key": "hf.co/acme/tiny-GGUF"})
        assert started.status_code == 202, started.text
        events = await wait_done(http, "hf.co/acme/tiny-GGUF")
        models = (await http.get("/api/models")).json()["models"]
    assert events[-1]["status"] == "completed", events[-1]
    percents = [e["percent"] for e in events]
    assert percents == sorted(percents) and percents[-1] == 100.0
    installed = {m["name"]: m for m in models}
    tiny = installed["hf.co/acme/tiny-GGUF:Q4_K_M"]
    assert tiny["verified"] is True and tiny["quantization"] == "Q4_K_M" and tiny["family"] == "llama"
    assert tiny["digest"] == "sha256-" + variants["variants"][0]["sha256"]
