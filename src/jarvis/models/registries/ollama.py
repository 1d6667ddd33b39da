"""The Ollama registry: OCI distribution manifests (`/v2/{name}/manifests/{tag}`) whose
`application/vnd.ollama.image.model` layer is the GGUF, fetched as a sha256-addressed blob.
Registries that answer 401 with a `Bearer` challenge get a token from the realm they name,
and only when that realm is on the registry's own host."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from urllib.parse import urlsplit

import httpx

from jarvis.errors import ModelNotFound, NotFound, UpstreamAuthError, UpstreamError
from jarvis.models.plan import Plan, RemoteFile
from jarvis.models.refs import ModelRef, ollama_model_name
from jarvis.models.registries.http import get_json
from jarvis.models.store import DIGEST_RE

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
)
MODEL_LAYER = "application/vnd.ollama.image.model"
PARAMS_LAYER = "application/vnd.ollama.image.params"  # JSON: the publisher's sampler settings and stops
MAX_PARAMS_BYTES = 64 * 1024
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
log = logging.getLogger(__name__)


class OllamaRegistry:
    def __init__(self, base_url: str, *, client: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.tokens: dict[str, str] = {}  # scope -> bearer token

    def auth_headers(self, repo: str | None = None) -> dict:
        token = self.tokens.get(f"repository:{repo}:pull") if repo else None
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _authenticate(self, response: httpx.Response, repo: str) -> None:
        challenge = response.headers.get("www-authenticate", "")
        if not challenge.lower().startswith("bearer "):
            raise UpstreamAuthError(f"the registry wants credentials for {repo}")
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.get("realm", "")
        if urlsplit(realm).hostname != urlsplit(self.base_url).hostname:
            raise UpstreamAuthError(f"the registry named a token service on another host ({realm!r}); refused")
        scope = params.get("scope") or f"repository:{repo}:pull"
        query = {"service": params.get("service", ""), "scope": scope}
        data, _ = await get_json(self.client, str(httpx.URL(realm, params=query)), what="registry token")
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not token:
            raise UpstreamAuthError("the registry's token service gave no token")
        self.tokens[f"repository:{repo}:pull"] = token

    async def manifest(self, repo: str, tag: str) -> dict:
        url = f"{self.base_url}/v2/{repo}/manifests/{tag}"
        what = f"Ollama model {ollama_model_name(repo, tag)}"
        for attempt in range(2):
            headers = {"Accept": MANIFEST_TYPES, **self.auth_headers(repo)}
            try:
                data, _ = await get_json(self.client, url, what=what, headers=headers)
                break
            except NotFound as exc:
                raise ModelNotFound(f"{what} does not exist in the registry") from exc
            except UpstreamAuthError as exc:
                if attempt or exc.details.get("upstream_status") != 401:
                    raise
                probe = await self.client.get(url, headers={"Accept": MANIFEST_TYPES})
                await self._authenticate(probe, repo)
        if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
            raise UpstreamError(f"{what}: the manifest has no layers")
        return data

    async def _parameters(self, repo: str, layer: dict) -> dict:
        """The params layer's settings (temperature, top_k, stop, …), checked against its digest.
        They tune answers; a pull never fails for them: anything wrong is logged and left out."""
        digest = str(layer.get("digest", ""))
        match = DIGEST_RE.fullmatch(digest)
        if not match or not isinstance(layer.get("size"), int) or not 0 < layer["size"] <= MAX_PARAMS_BYTES:
            log.warning("ignoring the params layer of %s: bad digest or size", repo)
            return {}
        try:
            response = await self.client.get(
                f"{self.base_url}/v2/{repo}/blobs/{digest}", headers=self.auth_headers(repo)
            )
            body = response.content[: MAX_PARAMS_BYTES + 1]
            if response.status_code != 200 or hashlib.sha256(body).hexdigest() != match.group(1):
                raise ValueError(f"answer {response.status_code}, or the bytes do not match the digest")
            parameters = json.loads(body)
            if not isinstance(parameters, dict):
                raise ValueError("not a JSON object")
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("ignoring the params layer of %s: %s", repo, exc)
            return {}
        return parameters

    async def plan(self, ref: ModelRef) -> Plan:
        manifest = await self.manifest(ref.repo_name, ref.tag_name)
        layers = [
            layer for layer in manifest["layers"] if isinstance(layer, dict) and layer.get("mediaType") == MODEL_LAYER
        ]
        if len(layers) != 1:
            raise UpstreamError(f"the manifest of {ref.key} has {len(layers)} model layers, expected one")
        layer = layers[0]
        digest = str(layer.get("digest", ""))
        if not DIGEST_RE.fullmatch(digest):
            raise UpstreamError(f"the manifest of {ref.key} names an invalid digest {digest[:80]!r}")
        size = layer.get("size")
        if not isinstance(size, int) or size <= 0:
            raise UpstreamError(f"the manifest of {ref.key} gives no size for the model layer")
        name = ollama_model_name(ref.repo_name, ref.tag_name)
        params = [
            layer for layer in manifest["layers"] if isinstance(layer, dict) and layer.get("mediaType") == PARAMS_LAYER
        ]
        return Plan(
            parameters=await self._parameters(ref.repo_name, params[0]) if params else {},
            name=name,
            model_key=ref.key,
            source="ollama",
            repo=ref.repo,
            quantization=None,
            files=[
                RemoteFile(
                    file=f"{name.replace('/', '-').replace(':', '-')}.gguf",
                    url=f"{self.base_url}/v2/{ref.repo}/blobs/{digest}",
                    size=size,
                    digest=digest.replace(":", "-"),
                    auth="ollama",
                )
            ],
        )
