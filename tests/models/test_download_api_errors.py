"""Bad input to the models API: every refusal is a clear 4xx (or, for a registry's own mistake, a
502) in `{"error": {"code", "message"}}`, and leaves nothing behind in the store."""

from __future__ import annotations

import hashlib
import json

import pytest

from jarvis.errors import InvalidInput
from jarvis.models.bundled import BUNDLED_MODELS
from jarvis.models.refs import parse_model_key
from jarvis.models.registries.url import check_public_url, plan_url
from jarvis.models.store import ModelStore
from tests.support.clients import client
from tests.support.downloads import blob_names, leftovers, manifest_names, pull, pull_and_wait, serving, until
from tests.support.gguf_files import gguf_bytes
from tests.support.hub import MANIFEST_V2, Fault, Hub

MiB = 1 << 20


def error_of(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"code", "message"} and error["message"]
    if code:
        assert error["code"] == code, error
    return error


def assert_untouched(server) -> None:
    store = server.settings.models_dir
    assert leftovers(store) == [] and len(blob_names(store)) == len(manifest_names(store)) == len(BUNDLED_MODELS)


# -- names that lead nowhere ------------------------------------------------------------------------------


@pytest.mark.parametrize("registry_auth", [False, True])
async def test_unknown_models_are_404(hub, dl_server, registry_auth):
    hub.registry_auth = registry_auth
    hub.add_hf_repo("acme/docs-only", {"README.md": b"# no weights here\n"})
    keys = [
        "nosuchmodel",
        "nosuch:7b",
        "ollama.ai/library/nosuch:1b",
        "registry.ollama.ai/someone/nosuch",
        "hf.co/acme/nosuch-GGUF",
    ]
    async with client(dl_server) as http:
        for key in keys:
            error = error_of(await http.post("/api/models/download", json={"model_key": key}), 404, "model_not_found")
            assert "nosuch" in error["message"], error
            error_of(await http.get("/api/models/variants", params={"model_key": key}), 404, "model_not_found")
        # a repo without weights exists, but has nothing to pull
        error = error_of(await http.post("/api/models/download", json={"model_key": "hf.co/acme/docs-only"}), 404)
        assert "no GGUF" in error["message"]
        assert (await http.get("/api/models/variants", params={"model_key": "hf.co/acme/docs-only"})).json()[
            "variants"
        ] == []
    assert_untouched(dl_server)


@pytest.mark.parametrize(
    "key",
    [
        "hf.co/onlyone",
        "hf.co/../x",
        "hf.co/acme/x:../../y",
        "a b",
        "ftp://x/y.gguf",
        "file:///etc/passwd.gguf",
        "https://example.com/model.bin",
        "https://host/files/.gguf",
        "tiny:../x",
        " ",
        "new\nline",
        "x" * 501,
    ],
)
async def test_malformed_model_keys_are_422_before_any_request(hub, dl_server, key):
    async with client(dl_server) as http:
        error = error_of(await http.post("/api/models/download", json={"model_key": key}), 422, "invalid_request")
        error_of(await http.get("/api/models/variants", params={"model_key": key}), 422, "invalid_request")
    assert "malformed" in error["message"] or "URL" in error["message"] or "model_key" in error["message"], error
    assert hub.requests == []
    assert_untouched(dl_server)


@pytest.mark.parametrize(
    "body",
    [
        {"model_key": 5},
        {"model_key": ""},
        {"model_key": None},
        {"model_key": ["qwen"]},
        {},
        ["qwen"],
        "qwen",
    ],
)
async def test_wrong_json_types_are_422(hub, dl_server, body):
    async with client(dl_server) as http:
        error_of(await http.post("/api/models/download", json=body), 422, "invalid_request")
        error_of(await http.post("/api/models/cancel", json=body), 422, "invalid_request")
        error_of(await http.request("DELETE", "/api/models/delete", json=body), 422, "invalid_request")
        for quantization in (4, "", "Q4 K", ["Q4_K_M"]):
            sent = await http.post("/api/models/download", json={"model_key": "qwen", "quantization": quantization})
            error_of(sent, 422, "invalid_request")
    assert hub.requests == []


async def test_not_json_at_all_is_422(dl_server):
    async with client(dl_server) as http:
        sent = await http.post(
            "/api/models/download", content=b"{model_key: qwen", headers={"content-type": "application/json"}
        )
        error_of(sent, 422, "invalid_request")
        error_of(await http.post("/api/models/cancel", json={"model_key": "x", "keep_partial": "yes"}), 422)
        error_of(await http.get("/api/models/variants"), 422, "invalid_request")
    assert_untouched(dl_server)


# -- quantizations that do not exist -------------------------------------------------------------------------


async def test_missing_quantization_lists_the_available_ones(hub, dl_server):
    hub.add_hf_repo(
        "acme/two-GGUF",
        {
            "two-Q8_0.gguf": gguf_bytes(file_type=7, seed=1),
            "two-Q4_K_M.gguf": gguf_bytes(file_type=15, seed=2),
        },
    )
    async with client(dl_server) as http:
        answers = [
            await http.post("/api/models/download", json={"model_key": "hf.co/acme/two-GGUF", "quantization": "Q2_K"}),
            await http.post("/api/models/download", json={"model_key": "hf.co/acme/two-GGUF:q2_k"}),
            await http.get("/api/models/variants", params={"model_key": "hf.co/acme/two-GGUF", "quantization": "Q2_K"}),
        ]
    for answer in answers:
        error = error_of(answer, 404, "model_not_found")
        assert "Q2_K" in error["message"] and "Q4_K_M, Q8_0" in error["message"], error
        assert error["available"] == ["Q4_K_M", "Q8_0"]
    assert not [r for r in hub.requests if r.path.startswith("/cdn/")]
    assert_untouched(dl_server)


# -- unknown jobs and models ---------------------------------------------------------------------------------


async def test_cancel_delete_activate_of_unknown_names_are_404(dl_server):
    async with client(dl_server) as http:
        error_of(await http.post("/api/models/cancel", json={"model_key": "qwen"}), 404, "not_found")
        error_of(await http.post("/api/models/cancel", json={"model_key": "no-such-job-id"}), 404, "not_found")
        error_of(await http.request("DELETE", "/api/models/delete", json={"model_key": "qwen"}), 404, "model_not_found")
        error_of(await http.delete("/api/models/hf.co/acme/nothing:Q4_K_M"), 404, "model_not_found")
        error_of(await http.post("/api/models/hf.co/acme/nothing:Q4_K_M/activate"), 404, "model_not_found")
    assert_untouched(dl_server)


async def test_a_model_still_downloading_cannot_be_activated_or_deleted(hub, dl_server):
    data = gguf_bytes(payload=32 * MiB, seed=3)
    hub.add_hf_repo("acme/busy-GGUF", {"busy-Q4_K_M.gguf": data})
    hub.faults["busy-Q4_K_M.gguf"] = Fault(throttle_bps=2 * MiB)
    name = "hf.co/acme/busy-GGUF:Q4_K_M"
    async with client(dl_server) as http:
        job = await pull(http, "hf.co/acme/busy-GGUF")
        await until(lambda: hub.bytes_sent("busy-Q4_K_M.gguf") > 0, what="the download to start")
        for target in (name, "hf.co/acme/busy-GGUF"):
            error = error_of(await http.post(f"/api/models/{target}/activate"), 409, "conflict")
            assert "downloading" in error["message"]
        error_of(await http.request("DELETE", "/api/models/delete", json={"model_key": name}), 409, "conflict")
        error_of(await http.delete(f"/api/models/{name}"), 409, "conflict")
        cancelled = await http.post("/api/models/cancel", json={"model_key": job["job_id"]})
        assert cancelled.json()["status"] == "cancelled"
    assert_untouched(dl_server)


# -- what a source sends that must never be installed ----------------------------------------------------------


async def test_a_file_that_is_not_gguf_is_refused(hub, dl_server):
    hub.add_file("/files/archive.gguf", b"PK\x03\x04" + bytes(range(256)) * 8192)
    async with client(dl_server) as http:
        events = await pull_and_wait(http, f"{hub.url}/files/archive.gguf")
    assert events[-1]["status"] == "error"
    assert events[-1]["error_code"] == "verification_failed" and "not a GGUF" in events[-1]["error"]
    assert_untouched(dl_server)


async def test_a_truncated_gguf_is_refused(hub, dl_server, bundled_path):
    with bundled_path.open("rb") as handle:
        head = handle.read(1 * MiB)  # the header alone is larger than this: the vocabulary is cut
    hub.add_file("/files/truncated.gguf", head)
    async with client(dl_server) as http:
        events = await pull_and_wait(http, f"{hub.url}/files/truncated.gguf")
        models = (await http.get("/api/models")).json()["models"]
    assert events[-1]["status"] == "error", events[-1]
    assert events[-1]["error_code"] == "model_invalid" and "not a valid GGUF" in events[-1]["error"]
    assert sorted(m["name"] for m in models) == sorted(BUNDLED_MODELS)
    assert_untouched(dl_server)


def _serve_raw_manifest(hub: Hub, name: str, tag: str, manifest: dict) -> None:
    """Serve a hand-written manifest; the hub builds only well-formed ones, so this writes its
    registry table directly (tests/support/hub.py keeps manifests as raw bytes by tag)."""
    hub.add_ollama_model(name, "base", model=gguf_bytes(seed=7))
    hub._oci[name].manifests[tag] = json.dumps(manifest).encode()


@pytest.mark.parametrize(
    "layer",
    [
        {"digest": "../../../../etc/passwd", "size": 10},
        {"digest": "sha256:../../x", "size": 10},
        {"digest": "md5:" + "0" * 32, "size": 10},
        {"digest": "sha256:" + "A" * 64, "size": 10},
        {"digest": "sha256:" + "0" * 64 + "\n", "size": 10},
        {"digest": "sha256:" + "0" * 64, "size": -1},
        {"digest": "sha256:" + "0" * 64},
    ],
    ids=["path", "sha256-path", "md5", "uppercase", "newline", "negative-size", "no-size"],
)
async def test_a_registry_manifest_with_a_bad_layer_is_refused(hub, dl_server, layer):
    _serve_raw_manifest(
        hub,
        "library/evil",
        "1b",
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_V2,
            "layers": [{"mediaType": "application/vnd.ollama.image.model", **layer}],
        },
    )
    async with client(dl_server) as http:
        error = error_of(await http.post("/api/models/download", json={"model_key": "evil:1b"}), 502, "upstream_error")
    assert "manifest" in error["message"]
    assert not [r for r in hub.requests if "/blobs/" in r.path]
    assert_untouched(dl_server)


async def test_repo_file_names_that_leave_the_repo_are_not_offered(hub, dl_server):
    hub.add_hf_repo(
        "acme/evil-GGUF",
        {
            "../evil-Q4_K_M.gguf": gguf_bytes(file_type=15, seed=8),
            "sub/../../evil-Q5_K_M.gguf": gguf_bytes(file_type=17, seed=9),
            "good-Q8_0.gguf": gguf_bytes(file_type=7, seed=10),
        },
    )
    async with client(dl_server) as http:
        variants = (await http.get("/api/models/variants", params={"model_key": "hf.co/acme/evil-GGUF"})).json()
        refused = await http.post("/api/models/download", json={"model_key": "hf.co/acme/evil-GGUF:Q4_K_M"})
    assert [v["file"] for v in variants["variants"]] == ["good-Q8_0.gguf"]
    assert error_of(refused, 404, "model_not_found")["available"] == ["Q8_0"]
    assert_untouched(dl_server)


def test_url_file_names_cannot_leave_their_folder():
    plan = plan_url(parse_model_key("https://mirror.example/a/..%2F..%2Fetc%2Fmodel.gguf"))
    assert plan.files[0].file == "model.gguf" and plan.name == "model"
    for key in ("https://mirror.example/%2E%2E.gguf", "https://mirror.example/files/.gguf"):
        with pytest.raises(InvalidInput):
            plan_url(parse_model_key(key))


# -- URLs that arrive in a request ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:1/x.gguf",
        "https://localhost/x.gguf",
        "https://[::1]/x.gguf",
        "https://10.1.2.3/x.gguf",
        "https://192.168.0.10/x.gguf",
        "https://169.254.169.254/latest/x.gguf",
        "https://[::ffff:127.0.0.1]/x.gguf",
        "https://0.0.0.0/x.gguf",
    ],
)
def test_private_addresses_are_refused(url):
    with pytest.raises(InvalidInput, match="JARVIS_ALLOW_INSECURE_URLS"):
        check_public_url(url)


async def test_insecure_urls_are_refused_unless_allowed(hub, download_settings):
    data = gguf_bytes(payload=1 * MiB, seed=11)
    served = hub.add_file("/files/lan-Q4_K_M.gguf", data)
    with serving(download_settings(allow_insecure_urls=False)) as server:
        async with client(server) as http:
            plain = await http.post("/api/models/download", json={"model_key": served.url})
            loopback = await http.post(
                "/api/models/download", json={"model_key": served.url.replace("http:", "https:")}
            )
    assert "https" in error_of(plain, 422, "invalid_request")["message"]
    assert "loopback or private" in error_of(loopback, 422, "invalid_request")["message"]
    assert hub.requests == []
    assert_untouched(server)
    with serving(download_settings(allow_insecure_urls=True)) as server:
        async with client(server) as http:
            events = await pull_and_wait(http, served.url)
    assert events[-1]["status"] == "completed", events[-1]


async def test_redirects_off_the_configured_hub_are_checked(tmp_path, download_settings):
    data = gguf_bytes(payload=1 * MiB, seed=12)
    with Hub(tmp_path / "lan-hub", cdn_host="localhost") as hub:  # the CDN is another (plain http, loopback) origin
        hub.add_hf_repo("acme/lan-GGUF", {"lan-Q4_K_M.gguf": data})
        with serving(download_settings(hf_endpoint=hub.url, allow_insecure_urls=False)) as server:
            async with client(server) as http:
                events = await pull_and_wait(http, "hf.co/acme/lan-GGUF")
        assert events[-1]["status"] == "error", events[-1]
        assert "refused to follow localhost" in events[-1]["error"]
        assert not [r for r in hub.requests if r.path.startswith("/cdn/")]
        assert not list((server.settings.models_dir / "jobs").iterdir())
        with serving(download_settings(hf_endpoint=hub.url, allow_insecure_urls=True)) as server:
            async with client(server) as http:
                events = await pull_and_wait(http, "hf.co/acme/lan-GGUF")
        assert events[-1]["status"] == "completed", events[-1]
        manifest = ModelStore(server.settings.models_dir).get("hf.co/acme/lan-GGUF:Q4_K_M")
        assert manifest.digest == f"sha256-{hashlib.sha256(data).hexdigest()}"
