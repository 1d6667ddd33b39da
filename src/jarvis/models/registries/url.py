"""A plain `https://…/*.gguf` URL: no registry, so no published digest (recorded as unverified).

Such a URL comes from a request, not from the operator, so unless JARVIS_ALLOW_INSECURE_URLS is
set it must be https and reach a public address, and so must every redirect a download follows:
otherwise a request could make the service fetch from (and probe) the machine's own network.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from jarvis.errors import InvalidInput, UpstreamError
from jarvis.models.plan import Plan, RemoteFile
from jarvis.models.refs import ModelRef
from jarvis.models.store import safe_file_name

_INSECURE_HINT = "set JARVIS_ALLOW_INSECURE_URLS to allow it (a LAN mirror, tests)"


def plan_url(ref: ModelRef) -> Plan:
    """Raises InvalidInput for a URL that names no usable file."""
    file = safe_file_name(unquote(PurePosixPath(urlsplit(ref.url_text).path).name))
    name = file[: -len(".gguf")] if file.lower().endswith(".gguf") else file
    if not name.strip("."):
        raise InvalidInput(f"the URL names no model file: {ref.url!r}")
    return Plan(
        name=name,
        model_key=ref.key,
        source="url",
        files=[RemoteFile(file=file, url=ref.url_text)],
    )


def check_public_url(url: str) -> None:
    """Refuse a URL that is not https, or whose host is or resolves to a loopback, private,
    link-local or otherwise non-public address. Blocks on DNS: call it off the event loop.

    Raises InvalidInput, UpstreamError (the host does not resolve)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        raise InvalidInput(
            f"plain {parts.scheme or 'scheme-less'} URLs are refused, use https ({url[:200]}); {_INSECURE_HINT}"
        )
    try:
        host, port = parts.hostname, parts.port or 443
    except ValueError as exc:
        raise InvalidInput(f"malformed URL {url[:200]!r}: {exc}") from exc
    if not host:
        raise InvalidInput(f"the URL has no host: {url[:200]!r}")
    public_addresses(host, port)


def public_addresses(host: str, port: int, *, resolve: Callable[..., list] = socket.getaddrinfo) -> list[str]:
    """The addresses `host` resolves to, in the resolver's order, when every one is public.
    Blocks on DNS. Raises InvalidInput (a non-public address), UpstreamError (no answer)."""
    try:
        addresses = list(dict.fromkeys(info[4][0] for info in resolve(host, port, type=socket.SOCK_STREAM)))
    except (OSError, UnicodeError) as exc:
        raise UpstreamError(f"cannot resolve {host}: {exc}") from exc
    if not addresses:
        raise UpstreamError(f"cannot resolve {host}: no addresses")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        address = getattr(address, "ipv4_mapped", None) or address
        if not address.is_global:
            raise InvalidInput(f"{host} is a loopback or private address ({address}), refused; {_INSECURE_HINT}")
    return addresses
