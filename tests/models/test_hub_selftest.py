"""The test hub itself: each endpoint's shape, redirects, Range, every fault, the token checks,
the request log and the byte counters, plus one real transfer of the bundled model."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.hub import MANIFEST_V2, Fault, Hub, lfs_pointer

MODEL = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4, every offset's value predictable
MODEL_SHA = hashlib.sha256(MODEL).hexdigest()
README = b"# tiny\nA test repo.\n"
REPO = "acme/tiny-GGUF"
GGUF = "tiny-Q4_K_M.gguf"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    hub = Hub(tmp_path_factory.mktemp("hub")).start()
    hub.token = "hf_secret"
    hub.add_hf_repo(REPO, {GGUF: MODEL, "README.md": README, "Q8_0/tiny-Q8_0.gguf": MODEL[::-1]})
    hub.add_hf_repo("acme/private", {GGUF: MODEL}, private=True)
    hub.add_hf_repo("acme/gated", {GGUF: MODEL, "README.md": README}, gated=True)
    hub.add_ollama_model("library/tiny", "1b", model=MODEL, template="{{ .Prompt }}", params={"stop": ["<end>"]})
    hub.add_file("/files/tiny.gguf", MODEL)
    yield hub
    hub.stop()


@pytest.fixture(autouse=True)
def fresh(hub):
    hub.reset()
    hub.registry_auth = False
    hub.sign_ttl = 3600
    yield


@pytest.fixture
def client():
    with httpx.Client(timeout=10) as client:
        yield client


def cdn_url(hub: Hub, client: httpx.Client, filename: str = GGUF) -> str:
    response = client.get(f"{hub.url}/{REPO}/resolve/main/{filename}")
    assert response.status_code == 302
    return response.headers["location"]


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# -- Hugging Face API ----------------------------------------------------------------------------


def test_model_info_lists_siblings_and_blobs_on_request(hub, client):
    plain = client.get(f"{hub.url}/api/models/{REPO}").json()
    assert plain["id"] == plain["modelId"] == REPO
    assert len(plain["sha"]) == 40 and int(plain["sha"], 16) >= 0
    assert plain["private"] is False and plain["gated"] is False
    assert plain["siblings"] == [{"rfilename": "Q8_0/tiny-Q8_0.gguf"}, {"rfilename": "README.md"}, {"rfilename": GGUF}]

    blobs = client.get(f"{hub.url}/api/models/{REPO}", params={"blobs": "true"}).json()
    by_name = {s["rfilename"]: s for s in blobs["siblings"]}
    pointer = lfs_pointer(MODEL_SHA, len(MODEL))
    assert by_name[GGUF] == {
        "rfilename": GGUF,
        "blobId": git_oid(pointer),
        "size": len(MODEL),
        "lfs": {"sha256": MODEL_SHA, "size": len(MODEL), "pointerSize": len(pointer)},
    }
    assert by_name["README.md"] == {"rfilename": "README.md", "blobId": git_oid(README), "size": len(README)}
    assert client.get(f"{hub.url}/api/models/{REPO}/revision/main").json()["sha"] == plain["sha"]
    assert client.get(f"{hub.url}/api/models/{REPO}/revision/{plain['sha']}").status_code == 200


def test_tree_lists_files_with_lfs_and_folders(hub, client):
    top = client.get(f"{hub.url}/api/models/{REPO}/tree/main").json()
    assert [(e["type"], e["path"]) for e in top] == [("directory", "Q8_0"), ("file", "README.md"), ("file", GGUF)]
    gguf = top[2]
    assert gguf["size"] == len(MODEL)
    assert gguf["lfs"] == {"oid": MODEL_SHA, "size": len(MODEL), "pointerSize": len(lfs_pointer(MODEL_SHA, len(MODEL)))}
    assert "lfs" not in top[1] and top[1]["oid"] == git_oid(README)

    everything = client.get(f"{hub.url}/api/models/{REPO}/tree/main", params={"recursive": "true"}).json()
    assert [e["path"] for e in everything] == ["Q8_0", "Q8_0/tiny-Q8_0.gguf", "README.md", GGUF]
    inside = client.get(f"{hub.url}/api/models/{REPO}/tree/main/Q8_0").json()
    assert [e["path"] for e in inside] == ["Q8_0/tiny-Q8_0.gguf"]
    assert inside[0]["lfs"]["oid"] == hashlib.sha256(MODEL[::-1]).hexdigest()


def test_hub_errors_use_the_hubs_codes(hub, client):
    missing = client.get(f"{hub.url}/api/models/acme/nope")
    assert missing.status_code == 401 and missing.json() == {"error": "Repository not found"}
    assert missing.headers["x-error-code"] == "RepoNotFound"
    assert client.head(f"{hub.url}/acme/nope/resolve/main/x.gguf").status_code == 401

    entry = client.get(f"{hub.url}/{REPO}/resolve/main/nope.gguf")
    assert entry.status_code == 404 and entry.json() == {"error": "Entry not found"}
    assert entry.headers["x-error-code"] == "EntryNotFound"

    revision = client.get(f"{hub.url}/{REPO}/resolve/v9/{GGUF}")
    assert revision.status_code == 404 and revision.headers["x-error-code"] == "RevisionNotFound"


def test_resolve_redirects_lfs_files_to_the_signed_cdn(hub, client):
    head = client.head(f"{hub.url}/{REPO}/resolve/main/{GGUF}")
    assert head.status_code == 302
    assert head.headers["x-linked-etag"] == f'"{MODEL_SHA}"'
    assert head.headers["x-linked-size"] == str(len(MODEL))
    assert head.headers["x-repo-commit"] == hub.hf_commit(REPO)
    assert head.headers["etag"] == f'"{git_oid(lfs_pointer(MODEL_SHA, len(MODEL)))}"'
    location = httpx.URL(head.headers["location"])
    assert location.is_absolute_url and location.path == f"/cdn/{MODEL_SHA}"
    assert set(location.params) == {"expires", "sig"} and int(location.params["expires"]) > time.time()

    got = client.get(f"{hub.url}/{REPO}/resolve/main/{GGUF}", follow_redirects=True)
    assert got.status_code == 200 and got.content == MODEL
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["accept-ranges"] == "bytes" and got.headers["content-length"] == str(len(MODEL))
    assert got.headers["etag"] == f'"{MODEL_SHA}"'
    assert 'filename="tiny-Q4_K_M.gguf";' in got.headers["content-disposition"]


def test_resolve_serves_small_files_directly(hub, client):
    response = client.get(f"{hub.url}/{REPO}/resolve/main/README.md")
    assert response.status_code == 200 and response.content == README
    assert response.headers["etag"] == f'"{git_oid(README)}"'
    assert response.headers["x-repo-commit"] == hub.hf_commit(REPO)
    assert "x-linked-etag" not in response.headers
    ranged = client.get(f"{hub.url}/{REPO}/resolve/main/README.md", headers={"Range": "bytes=2-5"})
    assert ranged.status_code == 206 and ranged.content == README[2:6]


def test_private_repo_needs_the_token(hub, client):
    for token in (None, "hf_wrong"):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for url in (f"{hub.url}/api/models/acme/private", f"{hub.url}/acme/private/resolve/main/{GGUF}"):
            response = client.get(url, headers=headers)
            assert response.status_code == 401 and response.json() == {"error": "Repository not found"}
    ok = {"Authorization": "Bearer hf_secret"}
    assert client.get(f"{hub.url}/api/models/acme/private", headers=ok).json()["private"] is True
    assert client.get(f"{hub.url}/acme/private/resolve/main/{GGUF}", headers=ok).status_code == 302


def test_gated_repo_shows_metadata_but_guards_files(hub, client):
    info = client.get(f"{hub.url}/api/models/acme/gated")
    assert info.status_code == 200 and info.json()["gated"] == "auto"
    assert client.get(f"{hub.url}/api/models/acme/gated/tree/main").status_code == 200

    url = f"{hub.url}/acme/gated/resolve/main/{GGUF}"
    anonymous = client.head(url)
    assert anonymous.status_code == 401 and anonymous.headers["x-error-code"] == "GatedRepo"
    wrong = client.get(url, headers={"Authorization": "Bearer hf_wrong"})
    assert wrong.status_code == 403 and wrong.headers["x-error-code"] == "GatedRepo"
    assert "not in the authorized list" in wrong.json()["error"]
    assert client.head(url, headers={"Authorization": "Bearer hf_secret"}).status_code == 302


# -- CDN -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "status", "start", "stop"),
    [
        ("bytes=10-19", 206, 10, 20),
        ("bytes=1048570-", 206, 1048570, len(MODEL)),
        ("bytes=-4", 206, len(MODEL) - 4, len(MODEL)),
        ("bytes=5-99999999", 206, 5, len(MODEL)),
        ("bytes=9-3", 200, 0, len(MODEL)),  # invalid: ignored, as RFC 9110 says
        ("bytes=0-1,5-6", 200, 0, len(MODEL)),  # several ranges: not supported, whole body
    ],
)
def test_cdn_ranges(hub, client, header, status, start, stop):
    response = client.get(cdn_url(hub, client), headers={"Range": header})
    assert response.status_code == status and response.content == MODEL[start:stop]
    assert response.headers["content-length"] == str(stop - start)
    if status == 206:
        assert response.headers["content-range"] == f"bytes {start}-{stop - 1}/{len(MODEL)}"


def test_cdn_head_unsatisfiable_range_and_signature(hub, client):
    url = cdn_url(hub, client)
    head = client.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(MODEL)) and head.content == b""
    beyond = client.get(url, headers={"Range": f"bytes={len(MODEL)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(MODEL)}"

    tampered = client.get(url.replace("sig=", "sig=0"))
    assert tampered.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in tampered.text
    assert client.get(url.split("?")[0]).status_code == 403


def test_cdn_urls_expire_after_sign_ttl(hub, client):
    hub.sign_ttl = -1
    response = client.get(cdn_url(hub, client))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/xml"
    assert "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>" in response.text


# -- OCI registry ----------------------------------------------------------------------------------


def test_registry_manifest_and_blobs(hub, client):
    assert client.get(f"{hub.url}/v2/").status_code == 200
    url = f"{hub.url}/v2/library/tiny/manifests/1b"
    response = client.get(url, headers={"Accept": MANIFEST_V2})
    assert response.status_code == 200 and response.headers["content-type"] == MANIFEST_V2
    digest = response.headers["docker-content-digest"]
    assert digest == f"sha256:{hashlib.sha256(response.content).hexdigest()}"
    manifest = response.json()
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == MANIFEST_V2
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.ollama.image.model",
        "application/vnd.ollama.image.template",
        "application/vnd.ollama.image.params",
    ]
    assert manifest["layers"][0] == {
        "mediaType": "application/vnd.ollama.image.model",
        "digest": f"sha256:{MODEL_SHA}",
        "size": len(MODEL),
    }
    assert client.head(url).headers["docker-content-digest"] == digest
    assert client.get(f"{hub.url}/v2/library/tiny/manifests/{digest}").content == response.content

    blob = f"{hub.url}/v2/library/tiny/blobs/sha256:{MODEL_SHA}"
    redirect = client.get(blob)
    assert redirect.status_code == 307 and httpx.URL(redirect.headers["location"]).path == f"/cdn/{MODEL_SHA}"
    assert client.get(blob, follow_redirects=True).content == MODEL
    # Ollama HEADs the blob URL, following redirects, and reads Content-Length
    assert client.head(blob, follow_redirects=True).headers["content-length"] == str(len(MODEL))
    config = client.get(f"{hub.url}/v2/library/tiny/blobs/{manifest['config']['digest']}", follow_redirects=True)
    assert json.loads(config.content)["model_format"] == "gguf"
    params = client.get(f"{hub.url}/v2/library/tiny/blobs/{manifest['layers'][2]['digest']}", follow_redirects=True)
    assert params.json() == {"stop": ["<end>"]}


def test_registry_unknowns(hub, client):
    unknown = client.get(f"{hub.url}/v2/library/nope/manifests/latest")
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    tag = client.get(f"{hub.url}/v2/library/tiny/manifests/99b")
    assert tag.status_code == 404 and tag.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    blob = client.get(f"{hub.url}/v2/library/tiny/blobs/sha256:{'0' * 64}")
    assert blob.status_code == 404 and blob.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert client.get(f"{hub.url}/v2/library/tiny/blobs/md5:abc").status_code == 400


def _ollama_challenge(header: str) -> dict[str, str]:
    """Ollama's `parseRegistryChallenge`/`getValue`: a value runs from `key="` to a `"` that is
    followed by `,` or ends the header."""
    header = header.removeprefix("Bearer ")
    values = {}
    for key in ("realm", "service", "scope"):
        start = header.index(key + "=") + len(key) + 2
        end = start
        while end < len(header) and not (header[end] == '"' and (end + 1 == len(header) or header[end + 1] == ",")):
            end += 1
        values[key] = header[start:end]
    return values


def test_registry_bearer_challenge_and_token(hub, client):
    hub.registry_auth = True
    url = f"{hub.url}/v2/library/tiny/manifests/1b"
    denied = client.get(url)
    assert denied.status_code == 401 and denied.json()["errors"][0]["code"] == "UNAUTHORIZED"
    challenge = _ollama_challenge(denied.headers["www-authenticate"])
    assert challenge == {"realm": f"{hub.url}/token", "service": "ollama.com", "scope": "repository:library/tiny:pull"}

    answer = client.get(challenge["realm"], params={"service": challenge["service"], "scope": challenge["scope"]})
    assert answer.status_code == 200 and answer.json()["expires_in"] == 300
    auth = {"Authorization": f"Bearer {answer.json()['token']}"}
    assert client.get(url, headers=auth).status_code == 200
    blob = client.get(f"{hub.url}/v2/library/tiny/blobs/sha256:{MODEL_SHA}", headers=auth, follow_redirects=True)
    assert blob.content == MODEL
    assert client.get(f"{hub.url}/v2/", headers=auth).status_code == 200

    other = client.get(challenge["realm"], params={"service": "ollama.com", "scope": "repository:library/other:pull"})
    assert client.get(url, headers={"Authorization": f"Bearer {other.json()['token']}"}).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer made-up"}).status_code == 401
    root = client.get(f"{hub.url}/v2/")
    assert root.status_code == 401 and "scope=" not in root.headers["www-authenticate"]


# -- plain files -----------------------------------------------------------------------------------


def test_plain_files_have_range_and_no_digest(hub, client):
    url = f"{hub.url}/files/tiny.gguf"
    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == MODEL
    assert not {"etag", "x-linked-etag", "digest", "docker-content-digest"} & set(whole.headers)
    part = client.get(url, headers={"Range": "bytes=100-"})
    assert part.status_code == 206 and part.content == MODEL[100:]
    assert client.head(url).headers["content-length"] == str(len(MODEL))
    assert client.get(f"{hub.url}/files/nope.gguf").status_code == 404
    with pytest.raises(ValueError):
        hub.add_file("/elsewhere/x.gguf", b"x")


# -- faults ----------------------------------------------------------------------------------------


def test_drop_closes_the_connection_mid_body(hub, client):
    hub.faults[GGUF] = Fault(drop_at=300_000)
    url = cdn_url(hub, client)
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", url) as response:
        assert response.headers["content-length"] == str(len(MODEL))
        for chunk in response.iter_raw():
            received += chunk
    assert bytes(received) == MODEL[:300_000]
    assert hub.requests[-1].aborted and hub.requests[-1].bytes_sent == 300_000
    # resuming from the cut is not affected, even though the fault has no `times` limit
    rest = client.get(url, headers={"Range": "bytes=300000-"})
    assert rest.status_code == 206 and rest.content == MODEL[300_000:]
    assert hub.faults[GGUF].hits == 1


def test_truncate_declares_the_full_length_and_closes_early(hub, client):
    hub.faults["/files/tiny.gguf"] = Fault(truncate_to=1000, times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(f"{hub.url}/files/tiny.gguf")
    assert hub.bytes_sent("/files/tiny.gguf") == 1000
    assert client.get(f"{hub.url}/files/tiny.gguf").content == MODEL


def test_stall_holds_the_connection_open(hub, client):
    hub.faults[f"sha256:{MODEL_SHA}"] = Fault(stall_at=5000, stall_seconds=0.6, times=1)
    began = time.monotonic()
    assert client.get(cdn_url(hub, client)).content == MODEL
    assert time.monotonic() - began >= 0.6

    hub.faults[f"sha256:{MODEL_SHA}"] = Fault(stall_at=5000, stall_seconds=30, times=1)
    url = cdn_url(hub, client)
    before, began = hub.bytes_sent(GGUF), time.monotonic()
    with httpx.Client(timeout=httpx.Timeout(10, read=0.3)) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.get(url)
    assert time.monotonic() - began < 5
    assert hub.bytes_sent(GGUF) - before == 5000
    assert client.get(url).content == MODEL  # the hub is not stuck behind the stalled response


def test_stop_does_not_wait_for_a_stalled_response(tmp_path):
    hub = Hub(tmp_path).start()
    served = hub.add_file("/files/slow.bin", MODEL)
    hub.faults["slow.bin"] = Fault(stall_at=10, stall_seconds=60)
    client = httpx.Client(timeout=60)
    with client.stream("GET", served.url) as response:
        chunks = response.iter_raw()
        assert next(chunks) == MODEL[:10]
        began = time.monotonic()
        hub.stop()
        assert time.monotonic() - began < 5 and not hub.thread.is_alive()
        with pytest.raises(httpx.HTTPError):
            for _ in chunks:
                pass
    client.close()


def test_corrupt_flips_one_byte(hub, client):
    hub.faults[GGUF] = Fault(corrupt_at=123_456, times=1)
    got = client.get(cdn_url(hub, client)).content
    assert len(got) == len(MODEL) and got[123_456] == MODEL[123_456] ^ 0xFF
    assert got[:123_456] == MODEL[:123_456] and got[123_457:] == MODEL[123_457:]


def test_range_faults(hub, client):
    url = cdn_url(hub, client)
    hub.faults[GGUF] = Fault(ignore_range=True, times=1)
    ignored = client.get(url, headers={"Range": "bytes=10-19"})
    assert ignored.status_code == 200 and ignored.content == MODEL

    hub.faults[GGUF] = Fault(refuse_range=True, times=1)
    assert client.get(url, headers={"Range": "bytes=10-19"}).status_code == 501
    hub.faults[GGUF] = Fault(refuse_range=True, refuse_status=416, times=1)
    refused = client.get(url, headers={"Range": "bytes=10-19"})
    assert refused.status_code == 416 and refused.headers["content-range"] == f"bytes */{len(MODEL)}"

    hub.faults[GGUF] = Fault(bad_content_range=True, times=1)
    bad = client.get(url, headers={"Range": "bytes=10-19"})
    assert bad.status_code == 206 and bad.headers["content-range"] == f"bytes 0-9/{len(MODEL)}"
    assert bad.content == MODEL[0:10]
    assert client.get(url).content == MODEL  # unranged requests are untouched by range faults
    assert client.get(url, headers={"Range": "bytes=10-19"}).content == MODEL[10:20]  # times used up


def test_expire_after_forces_a_new_url_from_the_origin(hub, client):
    hub.faults[GGUF] = Fault(expire_after=2, times=1)
    first = cdn_url(hub, client)
    assert client.get(first, headers={"Range": "bytes=0-9"}).status_code == 206
    assert client.get(first, headers={"Range": "bytes=10-19"}).status_code == 206
    expired = client.get(first, headers={"Range": "bytes=20-29"})
    assert expired.status_code == 403 and "Request has expired" in expired.text
    fresh = cdn_url(hub, client)
    assert fresh != first
    assert client.get(fresh, headers={"Range": "bytes=20-29"}).content == MODEL[20:30]


def test_throttle_limits_the_rate(hub, client):
    hub.faults["/files/tiny.gguf"] = Fault(throttle_bps=400_000)
    began = time.monotonic()
    got = client.get(f"{hub.url}/files/tiny.gguf", headers={"Range": "bytes=0-199999"}).content
    assert got == MODEL[:200_000] and time.monotonic() - began >= 0.45


def test_status_fault_then_normal(hub, client):
    hub.faults[GGUF] = Fault(status=503, times=2, retry_after=1)
    url = cdn_url(hub, client)
    first = client.get(url)
    assert first.status_code == 503 and first.headers["retry-after"] == "1"
    assert client.head(url).status_code == 200  # HEAD is never faulted by a file key
    assert client.get(url).status_code == 503
    assert client.get(url).content == MODEL
    assert hub.faults[GGUF].hits == 2


def test_html_error_page_instead_of_the_file(hub, client):
    hub.faults["/files/tiny.gguf"] = Fault(html_error=True, times=1)
    page = client.get(f"{hub.url}/files/tiny.gguf")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert b"rate limited" in page.content and page.content.startswith(b"<!DOCTYPE html>")
    assert hub.bytes_sent("/files/tiny.gguf") == 0


def test_path_faults_reach_metadata_endpoints(hub, client):
    path = "/v2/library/tiny/manifests/1b"
    hub.faults[path] = Fault(status=500, times=1)
    assert client.head(hub.url + path).status_code == 500
    assert client.get(hub.url + path).status_code == 200
    hub.faults[f"/{REPO}/resolve/main/{GGUF}"] = Fault(status=429, times=1)
    assert client.head(f"{hub.url}/{REPO}/resolve/main/{GGUF}").status_code == 429
    assert client.head(f"{hub.url}/{REPO}/resolve/main/{GGUF}").status_code == 302


# -- request log and counters ----------------------------------------------------------------------


def test_request_log_counters_and_reset(hub, client):
    client.get(
        f"{hub.url}/{REPO}/resolve/main/{GGUF}",
        headers={"Range": "bytes=0-99", "Authorization": "Bearer hf_secret"},
        follow_redirects=True,
    )
    resolve, cdn = hub.requests
    assert (resolve.method, resolve.status, resolve.range) == ("GET", 302, "bytes=0-99")
    assert resolve.path == f"/{REPO}/resolve/main/{GGUF}" and resolve.headers["authorization"] == "Bearer hf_secret"
    assert cdn.path == f"/cdn/{MODEL_SHA}" and set(cdn.query) == {"expires", "sig"}
    assert (cdn.status, cdn.bytes_sent) == (206, 100)
    client.head(f"{hub.url}/files/tiny.gguf")
    assert hub.requests[-1].bytes_sent == 0
    # the same bytes under every name they are known by
    assert hub.bytes_sent(GGUF) == hub.bytes_sent(MODEL_SHA) == hub.bytes_sent(f"sha256:{MODEL_SHA}") == 100
    assert hub.bytes_sent("/files/tiny.gguf") == 0
    with pytest.raises(KeyError):
        hub.bytes_sent("nope.gguf")
    hub.faults["x"] = Fault(status=500)
    hub.reset()
    assert hub.requests == [] and hub.faults == {} and hub.bytes_sent(GGUF) == 0


def _localhost_is_loopback_v4() -> bool:
    try:
        return any(info[4][0] == "127.0.0.1" for info in socket.getaddrinfo("localhost", 80))
    except OSError:
        return False


@pytest.mark.skipif(not _localhost_is_loopback_v4(), reason="localhost does not resolve to 127.0.0.1 here")
def test_cdn_on_another_origin_does_not_get_the_token(tmp_path):
    with Hub(tmp_path, cdn_host="localhost") as hub:
        hub.token = "hf_secret"
        hub.add_hf_repo("acme/gated", {GGUF: MODEL}, gated=True)
        with httpx.Client(timeout=10) as client:
            response = client.get(
                f"{hub.url}/acme/gated/resolve/main/{GGUF}",
                headers={"Authorization": "Bearer hf_secret"},
                follow_redirects=True,
            )
        assert response.content == MODEL
        resolve, cdn = hub.requests
        assert resolve.headers["authorization"] == "Bearer hf_secret"
        assert cdn.headers["host"].startswith("localhost:") and "authorization" not in cdn.headers


# -- the real bundled model ------------------------------------------------------------------------


def test_bundled_model_streams_fast_and_intact(bundled_path: Path, tmp_path):
    with Hub(tmp_path) as hub:
        repo = hub.add_hf_repo("unsloth/gemma-3-270m-it-GGUF", {"gemma-3-270m-it-Q4_K_M.gguf": bundled_path})
        served = repo.files["gemma-3-270m-it-Q4_K_M.gguf"]
        assert served.size == bundled_path.stat().st_size
        digest = hashlib.sha256()
        began = time.monotonic()
        with httpx.Client(timeout=30) as client, client.stream("GET", served.url, follow_redirects=True) as response:
            assert response.headers["content-length"] == str(served.size)
            for chunk in response.iter_raw(1024 * 1024):
                digest.update(chunk)
        elapsed = time.monotonic() - began
        assert digest.hexdigest() == served.sha256 == bundled_path.name.split("-")[-1]
        assert hub.bytes_sent("gemma-3-270m-it-Q4_K_M.gguf") == served.size
        assert elapsed < 30, f"{served.size / elapsed / 1e6:.0f} MB/s is too slow"
