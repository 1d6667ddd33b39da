"""HTTP helpers shared by the registries: bounded JSON reads and status translation."""

from __future__ import annotations

import json

import httpx

from jarvis.errors import NotFound, UpstreamAuthError, UpstreamError

MAX_JSON_BYTES = 8 * 1024 * 1024  # a repo listing or manifest is far smaller; refuse a flood


async def get_json(
    client: httpx.AsyncClient, url: str, *, what: str, headers: dict | None = None
) -> tuple[dict | list, httpx.Response]:
    """GET a JSON document of at most MAX_JSON_BYTES. Raises the service's errors."""
    try:
        async with client.stream("GET", url, headers=headers or {}) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JSON_BYTES:
                    raise UpstreamError(f"{what}: the answer is larger than {MAX_JSON_BYTES} bytes")
    except httpx.TransportError as exc:
        raise UpstreamError(f"{what}: {url} is not reachable ({type(exc).__name__})") from exc
    if response.status_code >= 400:
        raise_for_upstream(response.status_code, bytes(body), what=what)
    try:
        return json.loads(body), response
    except ValueError as exc:
        raise UpstreamError(f"{what}: the answer is not JSON") from exc


def raise_for_upstream(status: int, body: bytes, *, what: str) -> None:
    detail = body[:200].decode("utf-8", "replace")
    if status == 404:
        raise NotFound(f"{what}: not found")
    if status == 401:
        raise UpstreamAuthError(
            f"{what}: the source wants credentials (private or missing) — {detail}", details={"upstream_status": 401}
        )
    if status == 403:
        raise UpstreamAuthError(
            f"{what}: access denied (gated or forbidden) — {detail}", details={"upstream_status": 403}
        )
    raise UpstreamError(f"{what}: the source answered {status}: {detail}")
