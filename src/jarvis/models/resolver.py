"""Turn a parsed model reference into a download plan, through the registry it names."""

from __future__ import annotations

import asyncio

import httpx

from jarvis.config import Settings
from jarvis.errors import InvalidInput
from jarvis.models.plan import Plan, RemoteFile
from jarvis.models.refs import ModelRef
from jarvis.models.registries.hf import HuggingFace
from jarvis.models.registries.ollama import OllamaRegistry
from jarvis.models.registries.url import check_public_url, plan_url


class Resolver:
    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.hf = HuggingFace(settings.hf_endpoint, token=settings.hf_token, client=client)
        self.ollama = OllamaRegistry(settings.ollama_registry, client=client)

    async def plan(self, ref: ModelRef) -> Plan:
        """Raises ModelNotFound, UpstreamAuthError, UpstreamError, InvalidInput."""
        if ref.source == "hf":
            return await self.hf.plan(ref)
        if ref.source == "ollama":
            return await self.ollama.plan(ref)
        if ref.source == "url":
            plan = plan_url(ref)
            if not self.settings.allow_insecure_urls:
                await asyncio.to_thread(check_public_url, ref.url_text)
            return plan
        raise InvalidInput(f"{ref.key} needs no download")

    async def variants(self, ref: ModelRef) -> list[dict]:
        if ref.source == "hf":
            return [v.to_dict() for v in await self.hf.variants(ref.repo_name)]
        plan = await self.plan(ref)
        return [
            {
                "quantization": plan.quantization or ref.tag,
                "file": f.file,
                "files": [f.file],
                "size": f.size,
                "sha256": f.digest.removeprefix("sha256-") if f.digest else None,
                "url": f.url,
                "recommended": True,
            }
            for f in plan.files
        ]

    def auth_headers(self, remote: RemoteFile, plan: Plan) -> dict:
        if remote.auth == "hf":
            return self.hf.auth_headers()
        if remote.auth == "ollama":
            return self.ollama.auth_headers(plan.repo)
        return {}

    async def refresh_auth(self, plan: Plan) -> None:
        """Get a fresh registry token (they expire; after a restart there is none)."""
        if plan.source == "ollama" and plan.repo:
            tag = plan.name.rsplit(":", 1)[-1]
            await self.ollama.manifest(plan.repo, tag)
