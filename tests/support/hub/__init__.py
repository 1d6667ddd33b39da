"""A model hub on loopback for the download tests: a real HTTP server (Starlette under uvicorn,
in a daemon thread of the test process) that speaks

- the Hugging Face Hub API: `GET /api/models/{ns}/{repo}` (`?blobs=true`),
  `/api/models/{ns}/{repo}/revision/{rev}`, `/api/models/{ns}/{repo}/tree/{rev}[/{path}]`
  (`?recursive=true`), and `GET|HEAD /{ns}/{repo}/resolve/{rev}/{filename}`, which answers
  LFS files with a 302 to a signed "CDN" URL as huggingface.co does;
- the OCI distribution API as Ollama's registry uses it: `GET /v2/`,
  `GET|HEAD /v2/{name}/manifests/{tag|digest}`, `GET|HEAD /v2/{name}/blobs/{digest}` (a 307 to
  the same signed CDN), and a bearer-token realm at `GET /token`;
- plain URLs: `GET|HEAD /files/{name}`, Range-capable, with no digest anywhere.

Everything it serves is a real file read from disk in chunks (never loaded whole), so the
~250 MB bundled model streams as fast as loopback allows. Faults (`Fault`) can be injected
per file or per path: dropped connections, stalls, corrupt bytes, broken Range handling,
expiring signed URLs, throttling, error statuses, HTML error pages and short bodies.
Every request is recorded (`Hub.requests`) and the body bytes sent per file are counted
(`Hub.bytes_sent`).

Layout: server.py (the `Hub`: life cycle, content, request log, faults, the signed CDN and
plain files), huggingface.py and registry.py (the two APIs, mixed into `Hub`), serving.py
(bytes with Range and the injected faults), content.py (what is served, wire constants).

Wire facts it follows (sources: huggingface_hub `file_download.py` `get_hf_file_metadata`,
`utils/_http.py` `hf_raise_for_status`, `hf_api.py` `ModelInfo`/`RepoFile`; ollama
`server/images.go` `pullModelManifest`/`makeRequestWithRetry`/`parseRegistryChallenge`,
`server/download.go`, `server/auth.go`):

- `resolve` of an LFS file: 302, `Location` an absolute URL on another path (huggingface_hub
  follows only relative redirects when it reads metadata), `X-Linked-Etag: "<sha256>"`,
  `X-Linked-Size: <size>`, `X-Repo-Commit: <40 hex>`, and `ETag: "<git oid of the pointer>"`;
  clients prefer `X-Linked-Etag`/`X-Linked-Size` over `ETag`/`Content-Length`.
- `resolve` of a small file: 200 with the body and `ETag: "<git blob sha1>"`.
- Hub errors carry `X-Error-Code` (`RepoNotFound`, `GatedRepo`, `EntryNotFound`,
  `RevisionNotFound`) and `X-Error-Message`, and a JSON body `{"error": "..."}`. A missing
  or private repo is a 401 `RepoNotFound` (the Hub hides existence). A gated repo's metadata
  and file list are public; its files need the token: 401 `GatedRepo` without a token,
  403 `GatedRepo` with a token that is not on the list.
- siblings (`?blobs=true`): `rfilename`, `size`, `blobId`, and for LFS files
  `lfs: {sha256, size, pointerSize}`; tree entries: `type`, `oid`, `size`, `path`, and for
  LFS files `lfs: {oid, size, pointerSize}` (`oid` is the sha256 there). huggingface_hub
  indexes `pointerSize` unconditionally, so it is always present.
- registry: manifest media type `application/vnd.docker.distribution.manifest.v2+json` with a
  `Docker-Content-Digest` header; blobs are addressed `sha256:<hex>`; a 401 carries
  `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` written without spaces after
  the commas (Ollama's parser cuts a value at a `"` followed by `,`); the realm answers
  `{"token": "…"}`. Ollama HEADs the blob URL, following redirects, for `Content-Length`.
"""

from tests.support.hub.content import (
    CHUNK,
    CONFIG_V1,
    LFS_THRESHOLD,
    MANIFEST_V2,
    OCTET,
    OLLAMA_LAYER,
    HfRepo,
    HubFile,
    OllamaModel,
    file_sha256,
    lfs_pointer,
)
from tests.support.hub.server import Hub, RequestRecord
from tests.support.hub.serving import HTML_ERROR, Fault

__all__ = [
    "CHUNK",
    "CONFIG_V1",
    "HTML_ERROR",
    "LFS_THRESHOLD",
    "MANIFEST_V2",
    "OCTET",
    "OLLAMA_LAYER",
    "Fault",
    "HfRepo",
    "Hub",
    "HubFile",
    "OllamaModel",
    "RequestRecord",
    "file_sha256",
    "lfs_pointer",
]
