"""The HuggingFace Hub: repo file listing with LFS sha256 (`/api/models/{repo}?blobs=true`) and
`/{repo}/resolve/main/{file}` download URLs, at `HF_ENDPOINT` with `HF_TOKEN`."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from jarvis.errors import ModelNotFound, NotFound, UpstreamAuthError, UpstreamError
from jarvis.models.plan import Plan, RemoteFile
from jarvis.models.quant import quantization_of, split_part, variant_order
from jarvis.models.refs import ModelRef
from jarvis.models.registries.http import get_json


@dataclass
class Variant:
    quantization: str
    files: list[RemoteFile]

    @property
    def size(self) -> int:
        return sum(f.size or 0 for f in self.files)

    def to_dict(self) -> dict:
        first = self.files[0]
        return {
            "quantization": self.quantization,
            "file": first.file,
            "files": [f.file for f in self.files],
            "size": self.size,
            "sha256": first.digest.removeprefix("sha256-") if first.digest else None,
            "url": first.url,
            "recommended": self.quantization == "Q4_K_M",
        }


class HuggingFace:
    def __init__(self, endpoint: str, *, token: str | None, client: httpx.AsyncClient) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.client = client

    def auth_headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def resolve_url(self, repo: str, file: str) -> str:
        return f"{self.endpoint}/{repo}/resolve/main/{quote(file)}"

    async def variants(self, repo: str) -> list[Variant]:
        """The GGUF quantizations in the repo, recommended first. Raises ModelNotFound, UpstreamAuthError."""
        return self._variants(repo, await self._info(repo))

    async def _info(self, repo: str) -> dict:
        what = f"HuggingFace repo {repo}"
        try:
            info, _ = await get_json(
                self.client, f"{self.endpoint}/api/models/{repo}?blobs=true", what=what, headers=self.auth_headers()
            )
        except NotFound as exc:
            raise ModelNotFound(f"{what} does not exist") from exc
        except UpstreamAuthError as exc:
            if exc.details.get("upstream_status") == 401 and not self.token:
                raise ModelNotFound(
                    f"{what} does not exist, or it is private: set HUGGINGFACE_TOKEN (or HF_TOKEN) to pull it"
                ) from exc
            if exc.details.get("upstream_status") == 403:
                raise UpstreamAuthError(
                    f"{what} is gated: accept its terms on the Hub with the account whose token is set",
                    details=exc.details,
                ) from exc
            raise UpstreamAuthError(
                f"{what} does not exist, or the token set in HUGGINGFACE_TOKEN has no access to it (401)",
                details=exc.details,
            ) from exc
        if not isinstance(info, dict):
            raise UpstreamError(f"{what}: the repo listing is not a JSON object")
        return info

    def _variants(self, repo: str, info: dict) -> list[Variant]:
        groups: dict[str, list[RemoteFile]] = defaultdict(list)
        for sibling in info.get("siblings") or []:
            name = sibling.get("rfilename") or ""
            if not name.lower().endswith(".gguf") or "mmproj" in name.lower() or not _plain_path(name):
                continue
            quant = quantization_of(name)
            if quant is None:
                continue
            lfs = sibling.get("lfs") or {}
            digest = f"sha256-{lfs['sha256']}" if lfs.get("sha256") else None
            size = lfs.get("size") or sibling.get("size")
            groups[quant].append(
                RemoteFile(file=name, url=self.resolve_url(repo, name), size=size, digest=digest, auth="hf")
            )
        variants = []
        for quant, files in groups.items():
            split = sorted(
                (f for f in files if split_part(f.file)), key=lambda f: (_split_base(f.file), split_part(f.file))
            )
            singles = sorted((f for f in files if not split_part(f.file)), key=lambda f: f.file)
            if singles:
                variants.append(Variant(quant, [singles[0]]))
            elif split:
                total = (split_part(split[0].file) or (1, 1))[1]
                first_set = [f for f in split if _split_base(f.file) == _split_base(split[0].file)]
                if len(first_set) == total:
                    variants.append(Variant(quant, first_set))
        variants.sort(key=lambda v: variant_order(v.quantization, v.size))
        return variants

    async def plan(self, ref: ModelRef) -> Plan:
        """The files of the variant asked for (or the recommended one). Raises ModelNotFound, UpstreamAuthError."""
        info = await self._info(ref.repo_name)
        variants = self._variants(ref.repo_name, info)
        if not variants:
            raise ModelNotFound(f"HuggingFace repo {ref.repo} has no GGUF files")
        if ref.tag:
            chosen = next((v for v in variants if v.quantization == ref.tag), None)
            if chosen is None:
                available = [v.quantization for v in variants]
                raise ModelNotFound(
                    f"{ref.repo} has no {ref.tag} variant; available: {', '.join(available)}",
                    details={"available": available},
                )
        else:
            chosen = variants[0]
        if info.get("gated"):
            await self._check_access(ref.repo_name, chosen.files[0])
        return Plan(
            name=f"{ref.name_prefix}:{chosen.quantization}",
            model_key=ref.key,
            source="hf",
            repo=ref.repo,
            quantization=chosen.quantization,
            files=chosen.files,
        )

    async def _check_access(self, repo: str, remote: RemoteFile) -> None:
        """A gated repo lists its files to anyone but serves them only to accounts it has granted
        access: ask now (a HEAD, as huggingface_hub does), so the request that starts the pull is
        refused with the reason rather than the job failing later. Raises UpstreamAuthError."""
        try:
            response = await self.client.head(remote.url, headers=self.auth_headers(), follow_redirects=False)
        except httpx.TransportError:
            return  # the download itself will say what is wrong with the connection
        if response.status_code not in (401, 403):
            return
        if self.token:
            message = (
                f"{repo} is gated and the token's account has not been granted access: accept its terms on the Hub"
            )
        else:
            message = f"{repo} is gated: accept its terms on the Hub, then set HUGGINGFACE_TOKEN (or HF_TOKEN) to that account's token"
        said = response.headers.get("x-error-message")
        status = response.status_code
        raise UpstreamAuthError(
            f"{message} ({status}{f': {said}' if said else ''})", details={"upstream_status": status}
        )


def _plain_path(name: str) -> bool:
    """A repo file name that is a plain relative path (`a/b.gguf`): no `..`, no absolute path."""
    parts = name.split("/")
    return "\\" not in name and all(part not in ("", ".", "..") for part in parts)


def _split_base(file: str) -> str:
    """`model-Q4_K_M-00001-of-00003.gguf` → `model-Q4_K_M` (what the parts of one split share)."""
    return file.rsplit("-", 3)[0]
