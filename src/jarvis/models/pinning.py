"""Connections that go only where the address check said they may (DNS-rebinding defence).

Checking a URL's host and then letting the HTTP client resolve it again leaves a gap: a DNS
name with a zero TTL can answer with a public address for the check and with 127.0.0.1 or a
LAN address for the connection. Here the check and the connection share one resolution: the
network backend resolves the host itself, refuses unless every address is public, and opens
the TCP connection to one of exactly those addresses. TLS still verifies the certificate
against the host name (httpcore passes the URL's host as the server name), so pinning the
address changes nothing about who the peer must prove to be.

httpx has no public switch for the network backend of its default transport, so
`pinned_transport` sets it on the httpcore pool that transport built (httpcore's pool takes a
`network_backend` argument; httpx does not pass one through).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable

import httpcore
import httpx

from jarvis.models.registries.url import public_addresses

Resolver = Callable[..., list]


class PublicOnlyBackend(httpcore.SyncBackend):
    """A synchronous httpcore backend that connects to public addresses only, pinned to the
    addresses it checked. `exempt` hosts (the operator's configured origin, say) connect as
    usual; `check` and `resolve` are replaceable for tests."""

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

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if host.lower() in self.exempt:
            return super().connect_tcp(host, port, timeout, local_address, socket_options)
        addresses = self.check(host, port, resolve=self.resolve)  # raises: refused or unresolvable
        failure: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:  # try the next address, as a resolver-driven connect would
                failure = exc
        raise failure or httpcore.ConnectError(f"cannot connect to {host}")


def pinned_transport(backend: PublicOnlyBackend) -> httpx.HTTPTransport:
    """httpx's default transport (TLS, limits, HTTP/1.1) with its connections made by `backend`."""
    transport = httpx.HTTPTransport()
    transport._pool._network_backend = backend  # see the module docstring
    return transport
