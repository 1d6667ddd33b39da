"""An httpx transport on the standard library's `http.client`, for large response bodies.

httpx's default transport (httpcore and h11) hands a body over in 64 KiB pieces, each copied
into and out of h11's receive buffer: fetching a file from a fast server, that re-buffering
cost as much CPU as the socket reads and the file writes together. Here the response head is
parsed by http.client, and the body can be read straight from the socket into the caller's
own buffer: `response.extensions[READINTO](buffer)` reads what the socket has ready (one
`recv`, or a few TLS records), returns the count, 0 at the end of the body. Iterating the
response as usual works too (small bodies: redirects, error pages). Everything above the
transport stays httpx's: redirects, event hooks, timeouts, headers, cookies; failures raise
httpx's exceptions, so a caller cannot tell the two transports apart.

HTTP/1.1 only, keep-alive connections reused per (scheme, host, port), no proxies (a client
that must honour proxy settings keeps httpx's own transport). `connect` opens the TCP
connection (models/pinning.py pins it to an address it checked); TLS is added here, verifying
the certificate against the URL's host name.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import httpx

Connect = Callable[[str, int, "float | None"], socket.socket]

READINTO = "jarvis.readinto"  # the response extension: read the body into a buffer
ITER_SIZE = 64 << 10  # the pieces iterating a body yields
MAX_IDLE = 4  # idle connections kept per (scheme, host, port)
_PORTS = {"http": 80, "https": 443}


def plain_connect(host: str, port: int, timeout: float | None) -> socket.socket:
    return socket.create_connection((host, port), timeout)


class Http11Transport(httpx.BaseTransport):
    """`close()` may be called from another thread: reads blocked on its connections end at once."""

    def __init__(self, *, connect: Connect = plain_connect, ssl_context: ssl.SSLContext | None = None) -> None:
        self._connect = connect
        self._tls = ssl_context
        self._lock = threading.Lock()
        self._idle: dict[tuple, list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        scheme = request.url.scheme
        if scheme not in _PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}", request=request)
        host = request.url.raw_host.decode("ascii")  # IDNA-encoded, as DNS and SNI want it
        key = (scheme, host, request.url.port or _PORTS[scheme])
        timeouts = request.extensions.get("timeout", {})
        connection = self._checkout(key) or self._open(key, timeouts.get("connect"), request)
        try:
            response = connection.exchange(request, timeouts)
        except BaseException:
            self._release(connection, reusable=False)
            raise
        headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.getheaders()]
        body = _Body(self, connection, response, request)
        return httpx.Response(
            response.status,
            headers=headers,
            stream=body,
            extensions={
                "http_version": b"HTTP/1.0" if response.version == 10 else b"HTTP/1.1",
                "reason_phrase": response.reason.encode("latin-1", "replace"),
                READINTO: body.readinto,
            },
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [c for connections in self._idle.values() for c in connections]
            self._idle.clear()
            busy = list(self._busy)
        for connection in idle:
            connection.close()
        for connection in busy:  # their reading threads close them; wake those up now
            connection.interrupt()

    # --- the pool --------------------------------------------------------------------------

    def _checkout(self, key: tuple) -> _Connection | None:
        with self._lock:
            idle = self._idle.get(key, [])
            while idle:
                connection = idle.pop()
                if connection.alive():
                    self._busy.add(connection)
                    return connection
                connection.close()
        return None

    def _open(self, key: tuple, timeout: float | None, request: httpx.Request) -> _Connection:
        scheme, host, port = key
        if scheme == "https" and self._tls is None:
            self._tls = httpx.create_ssl_context()  # the CA bundle httpx would use; loaded only if needed (it is slow)
        connection = _Connection(host, port, connect=self._connect, tls=self._tls if scheme == "https" else None)
        try:
            connection.open(timeout)
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise _transport_error(exc, "connect", request) from exc
        except BaseException:
            connection.close()
            raise
        with self._lock:
            if not self._closed:
                self._busy.add(connection)
                connection.key = key
                return connection
        connection.close()
        raise httpx.ConnectError("the transport is closed", request=request)

    def _release(self, connection: _Connection, *, reusable: bool) -> None:
        with self._lock:
            self._busy.discard(connection)
            if reusable and not self._closed and connection.sock is not None:
                idle = self._idle.setdefault(connection.key, [])
                if len(idle) < MAX_IDLE:
                    idle.append(connection)
                    return
        connection.close()


class _Connection(http.client.HTTPConnection):
    """One keep-alive connection whose socket comes from the transport's `connect`: http.client's
    own `connect` would resolve the name itself, past the address check."""

    def __init__(self, host: str, port: int, *, connect: Connect, tls: ssl.SSLContext | None) -> None:
        super().__init__(host, port)
        self._opener, self._tls = connect, tls
        self.key: tuple = ()
        # the socket, also once http.client has let go of it (a response it reads to the close)
        self.opened: socket.socket | None = None

    def open(self, timeout: float | None) -> None:
        sock = self._opener(self.host, self.port, timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock.settimeout(timeout)  # the handshake is part of connecting
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = self.opened = sock

    def connect(self) -> None:
        # http.client reconnects by itself when a request finds no socket; here that is a bug
        raise http.client.NotConnected("the connection was closed")

    def exchange(self, request: httpx.Request, timeouts: dict) -> http.client.HTTPResponse:
        """Send `request`, read the response head; the body is left to `_Body`."""
        try:
            self.sock.settimeout(timeouts.get("write"))
            self.putrequest(
                request.method, request.url.raw_path.decode("ascii"), skip_host=True, skip_accept_encoding=True
            )
            for name, value in request.headers.raw:  # Host and Accept-Encoding among them
                self.putheader(name, value)
            self.endheaders(request.read() or None)
        except (OSError, http.client.HTTPException) as exc:
            raise _transport_error(exc, "write", request) from exc
        try:
            self.sock.settimeout(timeouts.get("read"))
            return self.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            raise _transport_error(exc, "read", request) from exc

    def alive(self) -> bool:
        """An idle connection that has something to read was closed by the server (or is out of step)."""
        try:
            return self.sock is not None and not self.ready()
        except (OSError, ValueError):
            return False

    def ready(self) -> bool:
        """Whether a read would not block."""
        sock = self.opened
        if sock is None:
            return False
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        if hasattr(select, "poll"):  # select() fails for descriptors above 1023
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])

    def interrupt(self) -> None:
        """Wake a thread blocked reading this connection (it sees the end of the stream)."""
        sock = self.opened
        try:
            if sock is not None:
                # socket.socket's shutdown, not SSLSocket's, which would also drop the TLS
                # object the reading thread is using
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


class _Body(httpx.SyncByteStream):
    def __init__(
        self,
        transport: Http11Transport,
        connection: _Connection,
        response: http.client.HTTPResponse,
        request: httpx.Request,
    ) -> None:
        self._transport, self._connection, self._response, self._request = transport, connection, response, request
        self._left = response.length  # of a Content-Length; None: chunked, or until the server closes
        self._tls = isinstance(connection.opened, ssl.SSLSocket)
        self._complete = False
        self._released = False

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Read body bytes into `buffer` (what is ready, at least one byte); 0 at the end of the body."""
        view = memoryview(buffer).cast("B")
        if self._left is not None:
            view = view[: self._left]
        try:
            count = self._read(view) if view else 0
            # A TLS read returns one record (16 KiB): take the ones already here too, so that
            # the caller handles big pieces, as over plain TCP.
            while self._tls and 0 < count < len(view) and self._connection.ready():
                more = self._read(view[count:])
                if not more:
                    break
                count += more
        except (OSError, http.client.HTTPException) as exc:
            raise _transport_error(exc, "read", self._request) from exc
        if count:
            if self._left is not None:
                self._left -= count
            return count
        if self._left:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body", request=self._request
            )
        self._complete = True
        return 0

    def _read(self, view: memoryview) -> int:
        response = self._response
        if response.fp is None:  # http.client closed it: the body has ended
            return 0
        if response.chunked:  # http.client undoes the chunked framing (rare for files)
            data = response.read1(len(view))
            view[: len(data)] = data
            return len(data)
        # At most one recv, straight into `view` (after what the head's reader had buffered).
        # HTTPResponse offers no readinto1 of its own; `fp` is the buffered socket reader it
        # parsed the head from. `_left` does its Content-Length count instead.
        return response.fp.readinto1(view)

    def __iter__(self) -> Iterator[bytes]:
        buffer = memoryview(bytearray(ITER_SIZE))
        while count := self.readinto(buffer):
            yield bytes(buffer[:count])

    def close(self) -> None:
        if self._released:
            return
        self._released = True
        # a body not read to its end leaves the connection out of step: it cannot be reused
        self._response.close()
        self._transport._release(self._connection, reusable=self._complete and not self._response.will_close)


_ERRORS = {
    "connect": (httpx.ConnectTimeout, httpx.ConnectError, httpx.ConnectError),
    "write": (httpx.WriteTimeout, httpx.WriteError, httpx.LocalProtocolError),
    "read": (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError),
}


def _transport_error(exc: Exception, phase: str, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception httpx's own transport raises for the same failure."""
    timeout, network, protocol = _ERRORS[phase]
    kind: type[httpx.TransportError]
    if isinstance(exc, TimeoutError):
        kind = timeout
    elif isinstance(exc, http.client.HTTPException):  # RemoteDisconnected is both: a protocol error
        kind = protocol
    else:
        kind = network
    return kind(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, request=request)
