"""Connections that go only where the address check said they may (DNS-rebinding defence).

Checking a URL's host and then letting the HTTP client resolve it again leaves a gap: a DNS
name with a zero TTL can answer with a public address for the check and with 127.0.0.1 or a
LAN address for the connection. Here the check and the connection share one resolution: the
backend resolves the host itself, refuses unless every address is public, and opens the TCP
connection to one of exactly those addresses. TLS still verifies the certificate against the
host name (the transport passes the URL's host as the server name), so pinning the address
changes nothing about who the peer must prove to be.

`pinned_transport` is the download transport (models/http11.py) with its sockets opened by
the backend.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable

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
