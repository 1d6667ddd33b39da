"""The hub itself: a Starlette app under uvicorn in a daemon thread, its content, the request
log, the faults registered on it, and the signed CDN and plain files it serves."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.hub.content import (
    HTTP_DATE,
    OCTET,
    SECRET,
    Blob,
    Grant,
    HfRepoState,
    HubFile,
    OciRepo,
    file_sha256,
)
from tests.support.hub.huggingface import HuggingFace
from tests.support.hub.registry import Registry
from tests.support.hub.serving import (
    Fault,
    QuietAborts,
    fault_response,
    is_abort,
    serve,
)
from tests.support.postgres import free_port


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
    client: tuple[str, int] | None = None  # the client's address and port: one per connection


def _xml_error(code: str, message: str) -> Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return Response(body, status_code=403, media_type="application/xml")


class Recorder:
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
            client=tuple(scope["client"]) if scope.get("client") else None,
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
            record.aborted = is_abort(exc)
            raise


class Hub(HuggingFace, Registry):
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
        self._hf: dict[str, HfRepoState] = {}
        self._oci: dict[str, OciRepo] = {}
        self._files: dict[str, Blob] = {}
        self._cdn: dict[str, Blob] = {}
        self._grants: dict[str, Grant] = {}
        self._registry_tokens: dict[str, set[str]] = {}
        self._serial = 0
        app = Recorder(Starlette(routes=self._routes()), self)
        # a stalled or throttled response must not hold `stop()` for long
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name=f"hub-{self.port}")
        logger = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, QuietAborts) for f in logger.filters):
            logger.addFilter(QuietAborts())

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

    def add_file(self, path: str, content: Path | str | bytes) -> HubFile:
        """Serve `content` at the plain URL `path` (which starts with `/files/`), with Range and
        no digest headers. A path is served in place and never hashed."""
        if not path.startswith("/files/") or len(path) <= len("/files/"):
            raise ValueError(f"plain files live under /files/, not {path!r}")
        source = Path(content) if isinstance(content, (str, Path)) else self._write(bytes(content))
        blob = Blob(source, source.stat().st_size, None, {path, path.rsplit("/", 1)[-1]})
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

    def _all_blobs(self) -> list[Blob]:
        unique = {id(b): b for b in [*self._cdn.values(), *self._files.values()]}
        return list(unique.values())

    def _blob(self, content: Path | str | bytes, *, names: set[str]) -> Blob:
        """The CDN blob for `content`, shared by everything with the same sha256."""
        path = self._write(bytes(content)) if isinstance(content, (bytes, bytearray, memoryview)) else Path(content)
        sha = file_sha256(path)
        with self._lock:
            blob = self._cdn.get(sha)
            if blob is None:
                blob = self._cdn[sha] = Blob(path, path.stat().st_size, sha, {sha, f"sha256:{sha}"})
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
        return None if fault is None else fault_response(fault)

    # -- serving bytes ------------------------------------------------------------------------

    def _serve(self, request: Request, blob: Blob, headers: dict[str, str]) -> Response:
        """Answer GET/HEAD for `blob` with Range support and the faults that apply."""
        return serve(request, blob, headers, self._take_fault)

    def _sign(self, blob: Blob, filename: str | None = None) -> str:
        """A signed, expiring CDN URL for `blob`."""
        with self._lock:
            self._serial += 1
            expires = int(time.time()) + self.sign_ttl
            message = f"{blob.sha256}:{expires}:{self._serial}".encode()
            sig = hmac.new(SECRET, message, hashlib.sha256).hexdigest()[:40]
            self._grants[sig] = Grant(blob.sha256, expires, filename)
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
