"""Connections that go only where the address check said they may (DNS-rebinding defence).

Checking a URL's host and then letting the HTTP client resolve it again leaves a gap: a DNS
name with a zero TTL can answer with a public address for the check and with 127.0.0.1 or a
LAN address for the connection. Here the check and the connection share one resolution: the
backend resolves the host itself, refuses unless every address is public, and opens the TCP
connection to one of exactly those addresses. TLS still verifies the certificate against the
host name (the transport passes the URL's host as the server name), so pinning the address
changes nothing about who the peer must prove to be.

`pinned_transport` is the download transport (models/http11.py) with its sockets opened by
the backend; `file_client` is the client a model file's bytes are fetched with, on it when
the URLs are guarded.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable, Iterable

import httpx

from jarvis.models.http11 import Http11Transport
from jarvis.models.registries.url import public_addresses

Resolver = Callable[..., list]


class PublicOnlyBackend:
    """Opens TCP connections to public addresses only, pinned to the addresses it checked.
    `exempt` hosts (the operator's configured origin, say) connect as usual; `check` and
    `resolve` are replaceable for tests."""

    def __init__(
        self,
        *,
        exempt: Iterable[str] = (),
        resolve: Resolver = socket.getaddrinfo,
        check: Callable[..., list[str]] = public_addresses,
    ) -> None:
        self.exempt = {host.lower() for host in exempt}
        self.resolve = resolve
        self.check = check

    def connect(self, host: str, port: int, timeout: float | None = None) -> socket.socket:
        """Raises what `check` raises (refused, unresolvable), OSError (no address answered)."""
        if host.lower() in self.exempt:
            return socket.create_connection((host, port), timeout)
        addresses = self.check(host, port, resolve=self.resolve)
        failure: OSError | None = None
        for address in addresses:
            try:
                return socket.create_connection((address, port), timeout)
            except OSError as exc:  # try the next address, as a resolver-driven connect would
                failure = exc
        raise failure or OSError(f"cannot connect to {host}")


def pinned_transport(backend: PublicOnlyBackend) -> Http11Transport:
    """The download transport (TLS, keep-alive, HTTP/1.1) with its connections made by `backend`."""
    return Http11Transport(connect=backend.connect)


def file_client(
    timeout: httpx.Timeout | float,
    *,
    guard: Callable[[httpx.Request], None] | None = None,
    exempt: Iterable[str] = (),
) -> httpx.Client:
    """A client for a model file's bytes (redirects followed, no content coding). With `guard`
    (called before every request, redirects included) its connections go to public addresses
    only, pinned as checked, `exempt` hosts excepted, and so through no proxy. Without, the
    download transport, unless proxy settings exist: then httpx's own, which honours them."""
    transport: httpx.BaseTransport | None = None
    hooks: dict[str, list[Callable]] = {}
    if guard is not None:
        transport = pinned_transport(PublicOnlyBackend(exempt=exempt))
        hooks = {"request": [guard]}
    elif not proxies_configured():
        transport = Http11Transport()  # also loads the CA bundle only for https (httpx's always does)
    return httpx.Client(
        follow_redirects=True,
        timeout=timeout,
        headers={"Accept-Encoding": "identity"},
        transport=transport,
        event_hooks=hooks,
    )


def proxies_configured() -> bool:
    """Whether proxy settings (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) exist: httpx reads the same."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))
