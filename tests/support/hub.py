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

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.postgres import free_port

CHUNK = 1024 * 1024
LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub stores larger files in LFS whatever their name
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
OLLAMA_LAYER = "application/vnd.ollama.image.{}"
OCTET = "application/octet-stream"
# Fixed dates keep every answer byte-for-byte deterministic.
HUB_DATE = "2025-03-12T10:00:00.000Z"
HTTP_DATE = "Wed, 12 Mar 2025 10:00:00 GMT"
HTML_ERROR = (
    b"<!DOCTYPE html>\n<html><head><title>429 Too Many Requests</title></head>"
    b"<body><h1>Too Many Requests</h1><p>You have been rate limited. Please retry later.</p></body></html>\n"
)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
_UNSATISFIABLE = "unsatisfiable"
_SECRET = b"jarvis-test-hub"


@dataclass
class Fault:
    """A misbehaviour of the hub for one file (or one request path).

    Register it as `hub.faults[key] = Fault(...)`; `key` is matched against the file being
    served (an HF file name such as `"model-Q4_K_M.gguf"` or `"sub/dir/x.gguf"`, a digest as
    `"sha256:<hex>"` or bare hex, a plain path such as `"/files/x.gguf"`) or against the
    request path itself (`"/v2/library/gemma3/manifests/270m"`).

    Which requests it affects:
    - file keys affect GET requests that transfer the file's bytes (the CDN, `/files/…`, and
      `resolve` of a small file); HEAD requests are never faulted, so probing stays reliable;
    - path keys affect every request to that exact path (any method), so `status` and
      `html_error` also work for metadata endpoints (`/api/…`, manifests, `resolve` redirects);
    - `expire_after` counts every request (GET or HEAD) made with one signed CDN URL.
    A request takes the first registered fault that matches it, has `times` left and would
    change something for it; that costs one of `times` (None: every request) and adds one to
    `hits`. Several effects in one Fault apply together.

    Offsets (`drop_at`, `stall_at`, `corrupt_at`) are absolute positions in the file. A drop
    or stall happens only in a response whose body starts before that offset and runs past
    it, so a client that resumes from where it was cut gets through even with `times=None`.
    """

    drop_at: int | None = None  # close the TCP connection abruptly once the body reaches this offset
    stall_at: int | None = None  # stop sending at this offset, keep the connection open …
    stall_seconds: float = 30.0  # … for this long, or until the client goes away, then go on
    corrupt_at: int | None = None  # flip the byte at this offset (XOR 0xFF) in what is sent
    ignore_range: bool = False  # answer a ranged request with 200 and the whole body
    refuse_range: bool = False  # answer a ranged request with `refuse_status` …
    refuse_status: int = 501  # … 501 Not Implemented, or 416 (with `Content-Range: bytes */size`)
    bad_content_range: bool = False  # 206 with other bytes than asked, truthfully labelled: see `_shifted`
    expire_after: int | None = None  # a signed CDN URL answers "Request has expired" from its N+1-th use
    throttle_bps: int | None = None  # send the body at this many bytes per second
    status: int | None = None  # answer this HTTP status (plain-text body) instead
    retry_after: int | None = None  # with `status`: a `Retry-After` header, in seconds
    html_error: bool = False  # answer 200 `text/html` with a rate-limit page instead of the file
    truncate_to: int | None = None  # declare the full Content-Length, close after this many body bytes
    times: int | None = None  # how many requests it affects; None: all
    hits: int = 0  # how many requests it has affected so far (kept by the hub)

    def _left(self) -> bool:
        return self.times is None or self.hits < self.times


@dataclass
class RequestRecord:
    """One request as the hub saw it; `status` and `bytes_sent` fill in as it is answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    range: str | None  # the Range header as sent
    status: int | None = None
    bytes_sent: int = 0  # body bytes of the response (0 for HEAD)
    aborted: bool = False  # the hub cut the connection on purpose (drop_at / truncate_to)


@dataclass(frozen=True)
class HubFile:
    """A file the hub serves: where a client starts (`url`) and what it must end up with."""

    name: str
    size: int
    sha256: str | None  # hex; None for plain files, which the hub never hashes
    url: str


@dataclass(frozen=True)
class HfRepo:
    repo_id: str
    sha: str  # the fake commit, as `X-Repo-Commit` and the model info's `sha` say
    files: dict[str, HubFile]


@dataclass(frozen=True)
class OllamaModel:
    name: str  # "library/gemma3"
    tag: str
    digest: str  # the manifest's own digest, as `Docker-Content-Digest` says
    manifest: dict
    config: HubFile
    layers: dict[str, HubFile]  # by the media type's last part: "model", "template", "params", …


@dataclass(eq=False)
class _Blob:
    path: Path
    size: int
    sha256: str | None
    names: set[str]  # every key a fault or `bytes_sent` may use for it
    sent: int = 0


@dataclass
class _HfFile:
    name: str
    blob: _Blob
    lfs: bool
    oid: str  # git object id: of the LFS pointer for LFS files, of the content otherwise
    pointer_size: int | None


@dataclass
class _HfRepo:
    repo_id: str
    files: dict[str, _HfFile]
    private: bool
    gated: str | bool
    sha: str


@dataclass
class _OciRepo:
    name: str
    manifests: dict[str, bytes] = field(default_factory=dict)  # by tag and by digest
    blobs: dict[str, _Blob] = field(default_factory=dict)  # by "sha256:<hex>"


@dataclass
class _Grant:
    """One signed CDN URL the hub handed out."""

    sha256: str
    expires: int
    filename: str | None
    uses: int = 0


class _Abort(Exception):
    """Raised inside a response body so that uvicorn closes the connection mid-body."""


class _QuietAborts(logging.Filter):
    """Keeps uvicorn from logging the deliberate aborts as application errors, and a stalled
    response cut short by `stop()` as a failure."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "graceful shutdown exceeded" in record.getMessage():
            return False
        exc = record.exc_info[1] if record.exc_info else None
        return not (_is_abort(exc) or (isinstance(exc, asyncio.CancelledError) and "graceful shutdown" in str(exc)))


def _is_abort(exc: BaseException | None) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_abort(inner) for inner in exc.exceptions)
    return isinstance(exc, _Abort)


_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of a file, read in chunks; cached per (path, size, mtime) for the run."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 * CHUNK):
            digest.update(block)
    with _hash_lock:
        _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


def _git_blob_oid(path: Path, size: int) -> str:
    digest = hashlib.sha1(f"blob {size}\0".encode())
    with path.open("rb") as handle:
        while block := handle.read(4 * CHUNK):
            digest.update(block)
    return digest.hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file that the repository stores in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _parse_range(value: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, stop) with stop exclusive; None to send the whole body (no Range, or one that
    RFC 9110 says to ignore: malformed, several ranges, last < first); or _UNSATISFIABLE."""
    if value is None:
        return None
    match = _RANGE.match(value)
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        return _UNSATISFIABLE if suffix == 0 or size == 0 else (max(0, size - suffix), size)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return _UNSATISFIABLE
    return start, min(int(last) + 1, size) if last else size


def _shifted(start: int, stop: int, size: int) -> tuple[int, int]:
    """What `bad_content_range` sends instead of [start, stop): the same length from offset 0
    (or from offset 1 when the request started at 0), clipped to the file."""
    new_start = 0 if start > 0 else min(1, size - 1)
    return new_start, min(new_start + (stop - start), size)


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    return value[7:].strip() if value[:7].lower() == "bearer " else None


def _hf_error(status: int, code: str | None, message: str) -> JSONResponse:
    headers = {"x-error-message": message}
    if code:
        headers["x-error-code"] = code
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _oci_error(status: int, code: str, message: str, detail: Any = None, headers: dict | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        error["detail"] = detail
    headers = {"docker-distribution-api-version": "registry/2.0", **(headers or {})}
    return JSONResponse({"errors": [error]}, status_code=status, headers=headers)


def _xml_error(code: str, message: str) -> Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return Response(body, status_code=403, media_type="application/xml")


class _FileBody(Response):
    """Streams [start, stop) of a blob from disk, applying the body faults of `fault`."""

    def __init__(
        self, blob: _Blob, *, start: int, stop: int, status: int, headers: dict, fault: Fault | None, head: bool
    ) -> None:
        self.blob, self.start, self.stop, self.fault, self.head = blob, start, stop, fault, head
        self.status_code = status
        self.raw_headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()]
        self.background = None

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if self.head:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        gone = anyio.Event()
        abort = False
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                gone.set()
                group.cancel_scope.cancel()

            group.start_soon(watch)
            abort = await self._stream(send, gone)
            group.cancel_scope.cancel()
        if abort:
            raise _Abort(f"{self.blob.path.name}: connection cut on purpose")

    def _plan(self) -> tuple[int, bool, int | None, int | None]:
        """Where sending ends, whether the connection is then cut, where to stall, what to corrupt."""
        fault, start, cut, abort = self.fault, self.start, self.stop, False
        if fault is None:
            return cut, abort, None, None
        if fault.drop_at is not None and start < fault.drop_at < self.stop:
            cut, abort = fault.drop_at, True
        if fault.truncate_to is not None and fault.truncate_to < self.stop - start:
            cut, abort = min(cut, start + fault.truncate_to), True
        stall = fault.stall_at if fault.stall_at is not None and start < fault.stall_at < cut else None
        corrupt = fault.corrupt_at if fault.corrupt_at is not None and start <= fault.corrupt_at < cut else None
        return cut, abort, stall, corrupt

    async def _stream(self, send, gone: anyio.Event) -> bool:
        cut, abort, stall, corrupt = self._plan()
        rate = self.fault.throttle_bps if self.fault and self.fault.throttle_bps else None
        pos, began = self.start, time.monotonic()
        with self.blob.path.open("rb") as handle:
            handle.seek(pos)
            while pos < cut:
                want = min(CHUNK, cut - pos)
                if stall is not None:
                    want = min(want, stall - pos)
                if rate:
                    want = min(want, max(1, rate // 20))
                data = handle.read(want)
                if not data:
                    return True  # the file shrank under us: never end a short body cleanly
                if corrupt is not None and pos <= corrupt < pos + len(data):
                    flipped = bytearray(data)
                    flipped[corrupt - pos] ^= 0xFF
                    data = bytes(flipped)
                await send({"type": "http.response.body", "body": data, "more_body": True})
                if gone.is_set():
                    return False
                pos += len(data)
                self.blob.sent += len(data)
                if rate:
                    delay = began + (pos - self.start) / rate - time.monotonic()
                    if delay > 0:
                        await anyio.sleep(delay)
                if stall is not None and pos == stall:
                    with anyio.move_on_after(self.fault.stall_seconds):
                        await gone.wait()
                    stall = None
                    if gone.is_set():
                        return False
        if abort:
            return True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return False


class _Recorder:
    """ASGI middleware: logs every request with its status and body size."""

    def __init__(self, app, hub: Hub) -> None:
        self.app, self.hub = app, hub

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        record = RequestRecord(
            method=scope["method"],
            path=scope["path"],
            query=dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)),
            headers=headers,
            range=headers.get("range"),
        )
        with self.hub._lock:
            self.hub.requests.append(record)
        head = scope["method"] == "HEAD"

        async def recording_send(message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            elif message["type"] == "http.response.body" and not head:
                record.bytes_sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except BaseException as exc:
            record.aborted = _is_abort(exc)
            raise


class Hub:
    """The hub. `Hub(tmp_dir).start()`; point `HF_ENDPOINT` and `JARVIS_OLLAMA_REGISTRY` at
    `hub.url`. Byte payloads given to the `add_*` methods are written under `tmp_dir`; paths
    are served in place.

    Settable at any time: `token` (the HF token private and gated repos accept),
    `registry_auth` (the registry wants a bearer token from `hub.url + "/token"`),
    `registry_service` (the challenge's service), `sign_ttl` (seconds a signed CDN URL is
    valid), and `faults`.
    """

    def __init__(self, tmp_dir: Path | str, *, cdn_host: str = "127.0.0.1") -> None:
        self.root = Path(tmp_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.cdn_host = cdn_host  # "localhost" puts the CDN on another origin than the API
        self.token: str | None = None
        self.registry_auth = False
        self.registry_service = "ollama.com"
        self.sign_ttl = 3600
        self.faults: dict[str, Fault] = {}
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._hf: dict[str, _HfRepo] = {}
        self._oci: dict[str, _OciRepo] = {}
        self._files: dict[str, _Blob] = {}
        self._cdn: dict[str, _Blob] = {}
        self._grants: dict[str, _Grant] = {}
        self._registry_tokens: dict[str, set[str]] = {}
        self._serial = 0
        app = _Recorder(Starlette(routes=self._routes()), self)
        # a stalled or throttled response must not hold `stop()` for long
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name=f"hub-{self.port}")
        logger = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, _QuietAborts) for f in logger.filters):
            logger.addFilter(_QuietAborts())

    # -- life cycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cdn_url(self) -> str:
        return f"http://{self.cdn_host}:{self.port}"

    def start(self) -> Hub:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test hub did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def __enter__(self) -> Hub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget faults, the request log, byte counters and CDN URL use counts."""
        with self._lock:
            self.faults.clear()
            self.requests.clear()
            for blob in self._all_blobs():
                blob.sent = 0
            for grant in self._grants.values():
                grant.uses = 0

    # -- content ------------------------------------------------------------------------------

    def add_hf_repo(
        self,
        repo_id: str,
        files: dict[str, Path | str | bytes],
        *,
        gated: bool | str = False,
        private: bool = False,
    ) -> HfRepo:
        """Serve an HF model repo (replacing one of that id). A file is LFS when its name ends
        in `.gguf` or it is larger than 10 MiB. A `str` is a path. `gated` is False, True
        ("auto") or "manual".

        Raises ValueError for a repo id that is not `namespace/name`, FileNotFoundError for a
        missing path."""
        if repo_id.count("/") != 1 or not all(repo_id.split("/")):
            raise ValueError(f"an HF repo id is namespace/name, not {repo_id!r}")
        if gated not in (False, True, "auto", "manual"):
            raise ValueError(f"gated must be False, True, 'auto' or 'manual', not {gated!r}")
        entries: dict[str, _HfFile] = {}
        for name, content in files.items():
            blob = self._blob(content, names={name, name.rsplit("/", 1)[-1]})
            lfs = name.endswith(".gguf") or blob.size > LFS_THRESHOLD
            if lfs:
                pointer = lfs_pointer(blob.sha256, blob.size)
                oid = hashlib.sha1(f"blob {len(pointer)}\0".encode() + pointer).hexdigest()
                entries[name] = _HfFile(name, blob, True, oid, len(pointer))
            else:
                entries[name] = _HfFile(name, blob, False, _git_blob_oid(blob.path, blob.size), None)
        listing = "\n".join(f"{name} {entry.oid}" for name, entry in sorted(entries.items()))
        sha = hashlib.sha1(f"{repo_id}\n{listing}".encode()).hexdigest()
        gate = "auto" if gated is True else gated
        with self._lock:
            self._hf[repo_id] = _HfRepo(repo_id, entries, private, gate, sha)
        served = {
            name: HubFile(name, e.blob.size, e.blob.sha256, f"{self.url}/{repo_id}/resolve/main/{quote(name)}")
            for name, e in entries.items()
        }
        return HfRepo(repo_id, sha, served)

    def add_ollama_model(
        self,
        name: str,
        tag: str = "latest",
        *,
        model: Path | str | bytes,
        template: Path | str | bytes | None = None,
        system: Path | str | bytes | None = None,
        params: Path | str | bytes | dict | None = None,
        license: Path | str | bytes | None = None,
        config: dict | None = None,
    ) -> OllamaModel:
        """Serve `name:tag` from the registry (a bare name gets the `library/` namespace).
        Layers in Ollama's order: model, template, system, license, params; the config blob is
        JSON (`model_format`, `model_family`, …, `rootfs.diff_ids`) updated with `config`.
        `str` layers are text; a `str` model is a path."""
        name = name if "/" in name else f"library/{name}"
        texts = {"template": template, "system": system, "license": license, "params": params}
        layers: dict[str, _Blob] = {"model": self._blob(Path(model) if isinstance(model, str) else model, names=set())}
        for kind, content in texts.items():
            if content is None:
                continue
            if isinstance(content, dict):
                content = json.dumps(content).encode()
            elif isinstance(content, str):
                content = content.encode()
            layers[kind] = self._blob(content, names=set())
        family = name.rsplit("/", 1)[-1]
        config_doc = {
            "model_format": "gguf",
            "model_family": family,
            "model_families": [family],
            "model_type": "",
            "file_type": "",
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{b.sha256}" for b in layers.values()]},
        }
        config_doc.update(config or {})
        config_blob = self._blob(json.dumps(config_doc).encode(), names=set())
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_V2,
            "config": {"mediaType": CONFIG_V1, "digest": f"sha256:{config_blob.sha256}", "size": config_blob.size},
            "layers": [
                {"mediaType": OLLAMA_LAYER.format(kind), "digest": f"sha256:{b.sha256}", "size": b.size}
                for kind, b in layers.items()
            ],
        }
        raw = json.dumps(manifest, indent=2).encode()
        digest = f"sha256:{hashlib.sha256(raw).hexdigest()}"
        with self._lock:
            repo = self._oci.setdefault(name, _OciRepo(name))
            repo.manifests[tag] = repo.manifests[digest] = raw
            for blob in [config_blob, *layers.values()]:
                repo.blobs[f"sha256:{blob.sha256}"] = blob

        def served(kind: str, blob: _Blob) -> HubFile:
            return HubFile(kind, blob.size, blob.sha256, f"{self.url}/v2/{name}/blobs/sha256:{blob.sha256}")

        return OllamaModel(
            name,
            tag,
            digest,
            manifest,
            served("config", config_blob),
            {kind: served(kind, blob) for kind, blob in layers.items()},
        )

    def add_file(self, path: str, content: Path | str | bytes) -> HubFile:
        """Serve `content` at the plain URL `path` (which starts with `/files/`), with Range and
        no digest headers. A path is served in place and never hashed."""
        if not path.startswith("/files/") or len(path) <= len("/files/"):
            raise ValueError(f"plain files live under /files/, not {path!r}")
        source = Path(content) if isinstance(content, (str, Path)) else self._write(bytes(content))
        blob = _Blob(source, source.stat().st_size, None, {path, path.rsplit("/", 1)[-1]})
        with self._lock:
            self._files[path] = blob
        return HubFile(path, blob.size, None, self.url + quote(path))

    def bytes_sent(self, name: str) -> int:
        """Body bytes of the file known as `name` sent so far, over all requests (HEAD and
        error pages count nothing). Identical content added twice is one blob behind the CDN,
        so its count covers both names. Raises KeyError for a name the hub does not serve."""
        blobs = [blob for blob in self._all_blobs() if name in blob.names]
        if not blobs:
            raise KeyError(f"the hub serves no file called {name!r}")
        return sum(blob.sent for blob in blobs)

    def hf_commit(self, repo_id: str) -> str:
        return self._hf[repo_id].sha

    def _all_blobs(self) -> list[_Blob]:
        unique = {id(b): b for b in [*self._cdn.values(), *self._files.values()]}
        return list(unique.values())

    def _blob(self, content: Path | str | bytes, *, names: set[str]) -> _Blob:
        """The CDN blob for `content`, shared by everything with the same sha256."""
        path = self._write(bytes(content)) if isinstance(content, (bytes, bytearray, memoryview)) else Path(content)
        sha = file_sha256(path)
        with self._lock:
            blob = self._cdn.get(sha)
            if blob is None:
                blob = self._cdn[sha] = _Blob(path, path.stat().st_size, sha, {sha, f"sha256:{sha}"})
            blob.names |= names
        return blob

    def _write(self, data: bytes) -> Path:
        """Byte payloads live under the hub's directory, named by their sha256."""
        path = self.root / "blobs" / hashlib.sha256(data).hexdigest()
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            partial.write_bytes(data)
            partial.replace(path)
        return path

    # -- faults -------------------------------------------------------------------------------

    def _take_fault(self, keys: set[str], wanted: Callable[[Fault], bool]) -> Fault | None:
        with self._lock:
            for key, fault in list(self.faults.items()):  # tests may add faults meanwhile
                if key in keys and fault._left() and wanted(fault):
                    fault.hits += 1
                    return fault
        return None

    def _path_fault(self, request: Request) -> Response | None:
        """A status / HTML fault registered for this request's exact path."""
        fault = self._take_fault({request.url.path}, lambda f: bool(f.status or f.html_error))
        return None if fault is None else _fault_response(fault)

    # -- serving bytes ------------------------------------------------------------------------

    def _serve(self, request: Request, blob: _Blob, headers: dict[str, str]) -> Response:
        """Answer GET/HEAD for `blob` with Range support and the faults that apply."""
        size, head = blob.size, request.method == "HEAD"
        span = _parse_range(request.headers.get("range"), size)
        ranged = span is not None
        natural = (0, size) if span is None or span == _UNSATISFIABLE else span
        keys = {request.url.path} | (set() if head else blob.names)

        def affects(f: Fault) -> bool:
            if f.status or f.html_error:
                return True
            if head:
                return False
            if ranged and (f.refuse_range or f.ignore_range or f.bad_content_range):
                return True
            start, stop = natural
            return bool(
                f.throttle_bps
                or (f.drop_at is not None and start < f.drop_at < stop)
                or (f.stall_at is not None and start < f.stall_at < stop)
                or (f.corrupt_at is not None and start <= f.corrupt_at < stop)
                or (f.truncate_to is not None and f.truncate_to < stop - start)
            )

        fault = self._take_fault(keys, affects)
        if fault is not None and (fault.status or fault.html_error):
            return _fault_response(fault)
        if ranged and fault is not None and fault.refuse_range:
            if fault.refuse_status == 416:
                return Response(b"", status_code=416, headers={"content-range": f"bytes */{size}"})
            body = b"Range requests are not supported\n"
            return Response(body, status_code=fault.refuse_status, media_type="text/plain")
        headers = {**headers, "accept-ranges": "bytes"}
        if ranged and fault is not None and fault.ignore_range:
            start, stop, status = 0, size, 200
        elif span == _UNSATISFIABLE:
            return Response(b"", status_code=416, headers={**headers, "content-range": f"bytes */{size}"})
        elif span is None:
            start, stop, status = 0, size, 200
        else:
            start, stop = span
            if fault is not None and fault.bad_content_range:
                start, stop = _shifted(start, stop, size)
            status = 206
        headers["content-length"] = str(stop - start)
        if status == 206:
            headers["content-range"] = f"bytes {start}-{stop - 1}/{size}"
        return _FileBody(blob, start=start, stop=stop, status=status, headers=headers, fault=fault, head=head)

    def _sign(self, blob: _Blob, filename: str | None = None) -> str:
        """A signed, expiring CDN URL for `blob`."""
        with self._lock:
            self._serial += 1
            expires = int(time.time()) + self.sign_ttl
            message = f"{blob.sha256}:{expires}:{self._serial}".encode()
            sig = hmac.new(_SECRET, message, hashlib.sha256).hexdigest()[:40]
            self._grants[sig] = _Grant(blob.sha256, expires, filename)
        return f"{self.cdn_url}/cdn/{blob.sha256}?expires={expires}&sig={sig}"

    async def _cdn_get(self, request: Request) -> Response:
        sha = request.path_params["sha256"]
        sig, expires = request.query_params.get("sig", ""), request.query_params.get("expires", "")
        with self._lock:
            grant = self._grants.get(sig)
            valid = grant is not None and grant.sha256 == sha and str(grant.expires) == expires
            if valid:
                grant.uses += 1
                uses = grant.uses
        if not valid:
            return _xml_error(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        blob = self._cdn[sha]

        def used_up(f: Fault) -> bool:
            return f.expire_after is not None and uses > f.expire_after

        expired = grant.expires < time.time() or self._take_fault(blob.names | {request.url.path}, used_up) is not None
        if expired:
            return _xml_error("AccessDenied", "Request has expired")
        headers = {
            "content-type": OCTET,
            "etag": f'"{sha}"',
            "last-modified": HTTP_DATE,
            "cache-control": "public, max-age=604800, immutable",
        }
        if grant.filename:
            base = grant.filename.rsplit("/", 1)[-1]
            headers["content-disposition"] = f"attachment; filename*=UTF-8''{quote(base)}; filename=\"{base}\";"
        return self._serve(request, blob, headers)

    async def _plain_file(self, request: Request) -> Response:
        blob = self._files.get(request.url.path)
        if blob is None:
            return Response(b"Not Found\n", status_code=404, media_type="text/plain")
        return self._serve(request, blob, {"content-type": OCTET})

    # -- Hugging Face -------------------------------------------------------------------------

    def _hf_repo(self, request: Request, *, content: bool) -> tuple[_HfRepo | None, Response | None]:
        """The repo the request names, or the error the Hub gives; `content` asks for file
        bytes, which a gated repo guards."""
        repo_id = f"{request.path_params['ns']}/{request.path_params['repo']}"
        repo, token = self._hf.get(repo_id), _bearer(request)
        authorised = self.token is not None and token == self.token
        if repo is None or (repo.private and not authorised):
            return None, _hf_error(401, "RepoNotFound", "Repository not found")
        if content and repo.gated and not authorised:
            if token is None:
                message = (
                    f"Access to model {repo_id} is restricted. You must have access to it "
                    "and be authenticated to access it. Please log in."
                )
                return None, _hf_error(401, "GatedRepo", message)
            message = (
                f"Access to model {repo_id} is restricted and you are not in the authorized list. "
                f"Visit {self.url}/{repo_id} to ask for access."
            )
            return None, _hf_error(403, "GatedRepo", message)
        return repo, None

    @staticmethod
    def _revision_error(repo: _HfRepo, revision: str) -> Response | None:
        if revision in ("main", repo.sha):
            return None
        return _hf_error(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    async def _hf_model_info(self, request: Request) -> Response:
        if (faulted := self._path_fault(request)) is not None:
            return faulted
        repo, error = self._hf_repo(request, content=False)
        if error is not None:
            return error
        revision = request.path_params.get("revision", "main")
        if (error := self._revision_error(repo, revision)) is not None:
            return error
        blobs = request.query_params.get("blobs", "").lower() in ("1", "true")
        siblings = []
        for name, entry in sorted(repo.files.items()):
            sibling: dict[str, Any] = {"rfilename": name}
            if blobs:
                sibling.update(blobId=entry.oid, size=entry.blob.size)
                if entry.lfs:
                    size, pointer = entry.blob.size, entry.pointer_size
                    sibling["lfs"] = {"sha256": entry.blob.sha256, "size": size, "pointerSize": pointer}
            siblings.append(sibling)
        ns = repo.repo_id.split("/")[0]
        has_gguf = any(name.endswith(".gguf") for name in repo.files)
        return JSONResponse(
            {
                "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": ns,
                "sha": repo.sha,
                "lastModified": HUB_DATE,
                "createdAt": HUB_DATE,
                "private": repo.private,
                "disabled": False,
                "gated": repo.gated,
                "downloads": 0,
                "likes": 0,
                "library_name": "gguf" if has_gguf else None,
                "tags": ["gguf"] if has_gguf else [],
                "siblings": siblings,
                "spaces": [],
                "usedStorage": sum(entry.blob.size for entry in repo.files.values()),
            }
        )

    async def _hf_tree(self, request: Request) -> Response:
        if (faulted := self._path_fault(request)) is not None:
            return faulted
        repo, error = self._hf_repo(request, content=False)
        if error is not None:
            return error
        if (error := self._revision_error(repo, request.path_params["revision"])) is not None:
            return error
        base = request.path_params.get("path", "").strip("/")
        recursive = request.query_params.get("recursive", "").lower() in ("1", "true")
        prefix = f"{base}/" if base else ""
        files = {name: entry for name, entry in repo.files.items() if name.startswith(prefix)}
        if base and not files:
            return _hf_error(404, "EntryNotFound", f'{base} does not exist on "{request.path_params["revision"]}"')
        folders: set[str] = set()
        for name in files:
            parts = name[len(prefix) :].split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                folders.add(prefix + "/".join(parts[:depth]))
        entries: list[dict[str, Any]] = []
        for folder in sorted(folders):
            if recursive or "/" not in folder[len(prefix) :]:
                oid = hashlib.sha1(f"{repo.sha}:{folder}".encode()).hexdigest()
                entries.append({"type": "directory", "oid": oid, "size": 0, "path": folder})
        for name, entry in sorted(files.items()):
            if recursive or "/" not in name[len(prefix) :]:
                item: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.blob.size, "path": name}
                if entry.lfs:
                    item["lfs"] = {"oid": entry.blob.sha256, "size": entry.blob.size, "pointerSize": entry.pointer_size}
                entries.append(item)
        return JSONResponse(entries)

    async def _hf_resolve(self, request: Request) -> Response:
        if (faulted := self._path_fault(request)) is not None:
            return faulted
        repo, error = self._hf_repo(request, content=True)
        if error is not None:
            return error
        if (error := self._revision_error(repo, request.path_params["revision"])) is not None:
            return error
        entry = repo.files.get(request.path_params["filename"])
        if entry is None:
            return _hf_error(404, "EntryNotFound", "Entry not found")
        headers = {"x-repo-commit": repo.sha, "etag": f'"{entry.oid}"', "vary": "Origin, Accept"}
        if entry.lfs:
            location = self._sign(entry.blob, entry.name)
            headers.update(
                {
                    "location": location,
                    "x-linked-etag": f'"{entry.blob.sha256}"',
                    "x-linked-size": str(entry.blob.size),
                }
            )
            body = f"Found. Redirecting to {location}"
            return Response(body, status_code=302, headers=headers, media_type="text/plain")
        base = entry.name.rsplit("/", 1)[-1]
        headers.update(
            {
                "content-type": "text/plain; charset=utf-8",
                "content-disposition": f"inline; filename*=UTF-8''{quote(base)}; filename=\"{base}\";",
                "last-modified": HTTP_DATE,
            }
        )
        return self._serve(request, entry.blob, headers)

    # -- OCI registry (Ollama) ----------------------------------------------------------------

    def _challenge(self, name: str | None) -> str:
        value = f'Bearer realm="{self.url}/token",service="{self.registry_service}"'
        return value + (f',scope="repository:{name}:pull"' if name else "")

    def _registry_denied(self, request: Request, name: str | None) -> Response | None:
        """None when the request may pull `name` (any valid token for `/v2/`), else the 401."""
        if not self.registry_auth:
            return None
        granted = self._registry_tokens.get(_bearer(request) or "")
        if granted is not None and (name is None or name in granted):
            return None
        detail = [{"Type": "repository", "Class": "", "Name": name, "Action": "pull"}] if name else None
        return _oci_error(
            401, "UNAUTHORIZED", "authentication required", detail, {"www-authenticate": self._challenge(name)}
        )

    async def _v2_root(self, request: Request) -> Response:
        if (denied := self._registry_denied(request, None)) is not None:
            return denied
        return JSONResponse({}, headers={"docker-distribution-api-version": "registry/2.0"})

    async def _v2_manifest(self, request: Request) -> Response:
        if (faulted := self._path_fault(request)) is not None:
            return faulted
        name, reference = request.path_params["name"], request.path_params["reference"]
        if (denied := self._registry_denied(request, name)) is not None:
            return denied
        repo = self._oci.get(name)
        raw = repo.manifests.get(reference) if repo else None
        if raw is None:
            return _oci_error(404, "MANIFEST_UNKNOWN", "manifest unknown", {"Tag": reference})
        digest = f"sha256:{hashlib.sha256(raw).hexdigest()}"
        headers = {
            "docker-content-digest": digest,
            "etag": f'"{digest}"',
            "docker-distribution-api-version": "registry/2.0",
        }
        return Response(raw, media_type=MANIFEST_V2, headers=headers)

    async def _v2_blob(self, request: Request) -> Response:
        if (faulted := self._path_fault(request)) is not None:
            return faulted
        name, digest = request.path_params["name"], request.path_params["digest"]
        if (denied := self._registry_denied(request, name)) is not None:
            return denied
        if not _DIGEST.match(digest):
            return _oci_error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        repo = self._oci.get(name)
        blob = repo.blobs.get(digest) if repo else None
        if blob is None:
            return _oci_error(404, "BLOB_UNKNOWN", "blob unknown to registry", digest)
        location = self._sign(blob)
        headers = {"location": location, "docker-distribution-api-version": "registry/2.0"}
        body = f'<a href="{location}">Temporary Redirect</a>.\n\n'
        return Response(body, status_code=307, headers=headers, media_type="text/html; charset=utf-8")

    async def _token(self, request: Request) -> Response:
        """The bearer-token realm: `?service=…&scope=repository:NAME:pull` (scope may repeat)."""
        service = request.query_params.get("service")
        if service is not None and service != self.registry_service:
            return JSONResponse({"errors": [{"code": "DENIED", "message": f"unknown service {service}"}]}, 401)
        names = set()
        for scope in request.query_params.getlist("scope"):
            parts = scope.split(":")
            if len(parts) != 3 or parts[0] != "repository" or "pull" not in parts[2].split(","):
                return JSONResponse({"errors": [{"code": "DENIED", "message": f"bad scope {scope}"}]}, 400)
            names.add(parts[1])
        token = "reg-" + hmac.new(_SECRET, "\n".join(sorted(names)).encode(), hashlib.sha256).hexdigest()[:40]
        with self._lock:
            self._registry_tokens[token] = names
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return JSONResponse({"token": token, "access_token": token, "expires_in": 300, "issued_at": issued})

    # -- routing ------------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        get = ["GET"]  # Starlette answers HEAD on every GET route
        return [
            Route("/api/models/{ns}/{repo}", self._hf_model_info, methods=get),
            Route("/api/models/{ns}/{repo}/revision/{revision}", self._hf_model_info, methods=get),
            Route("/api/models/{ns}/{repo}/tree/{revision}", self._hf_tree, methods=get),
            Route("/api/models/{ns}/{repo}/tree/{revision}/{path:path}", self._hf_tree, methods=get),
            Route("/cdn/{sha256}", self._cdn_get, methods=get),
            Route("/files/{name:path}", self._plain_file, methods=get),
            Route("/token", self._token, methods=get),
            Route("/v2/", self._v2_root, methods=get),
            Route("/v2/{name:path}/manifests/{reference}", self._v2_manifest, methods=get),
            Route("/v2/{name:path}/blobs/{digest}", self._v2_blob, methods=get),
            Route("/{ns}/{repo}/resolve/{revision}/{filename:path}", self._hf_resolve, methods=get),
        ]


def _fault_response(fault: Fault) -> Response:
    if fault.status:
        headers = {"retry-after": str(fault.retry_after)} if fault.retry_after is not None else {}
        body = f"{fault.status} injected by the test hub\n"
        return Response(body, status_code=fault.status, headers=headers, media_type="text/plain")
    return Response(HTML_ERROR, status_code=200, media_type="text/html; charset=utf-8")
