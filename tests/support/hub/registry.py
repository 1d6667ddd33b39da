"""The OCI distribution API as Ollama's registry uses it: manifests, blobs (a 307 to a signed
CDN URL) and a bearer-token realm (see tests/support/hub/__init__.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.support.hub.content import (
    CONFIG_V1,
    MANIFEST_V2,
    OLLAMA_LAYER,
    SECRET,
    Blob,
    HubFile,
    OciRepo,
    OllamaModel,
)
from tests.support.hub.serving import bearer

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _oci_error(status: int, code: str, message: str, detail: Any = None, headers: dict | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        error["detail"] = detail
    headers = {"docker-distribution-api-version": "registry/2.0", **(headers or {})}
    return JSONResponse({"errors": [error]}, status_code=status, headers=headers)


class Registry:
    """The Hub's registry half, mixed into `Hub` (which holds the state it uses)."""

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
        layers: dict[str, Blob] = {"model": self._blob(Path(model) if isinstance(model, str) else model, names=set())}
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
            repo = self._oci.setdefault(name, OciRepo(name))
            repo.manifests[tag] = repo.manifests[digest] = raw
            for blob in [config_blob, *layers.values()]:
                repo.blobs[f"sha256:{blob.sha256}"] = blob

        def served(kind: str, blob: Blob) -> HubFile:
            return HubFile(kind, blob.size, blob.sha256, f"{self.url}/v2/{name}/blobs/sha256:{blob.sha256}")

        return OllamaModel(
            name,
            tag,
            digest,
            manifest,
            served("config", config_blob),
            {kind: served(kind, blob) for kind, blob in layers.items()},
        )

    def _challenge(self, name: str | None) -> str:
        value = f'Bearer realm="{self.url}/token",service="{self.registry_service}"'
        return value + (f',scope="repository:{name}:pull"' if name else "")

    def _registry_denied(self, request: Request, name: str | None) -> Response | None:
        """None when the request may pull `name` (any valid token for `/v2/`), else the 401."""
        if not self.registry_auth:
            return None
        granted = self._registry_tokens.get(bearer(request) or "")
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
        token = "reg-" + hmac.new(SECRET, "\n".join(sorted(names)).encode(), hashlib.sha256).hexdigest()[:40]
        with self._lock:
            self._registry_tokens[token] = names
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return JSONResponse({"token": token, "access_token": token, "expires_in": 300, "issued_at": issued})
