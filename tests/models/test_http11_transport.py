"""The download transport (models/http11.py) behaves as httpx's own does: bodies whole, cut
short or left unread, redirects, HEAD, timeouts, keep-alive; it reads a body straight into a
caller's buffer; closing it interrupts a blocked read; and over TLS it verifies the
certificate against the URL's host name while connecting where it is told."""

from __future__ import annotations

import random
import shutil
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from jarvis.models.http11 import READINTO, Http11Transport
from jarvis.models.pinning import PublicOnlyBackend
from tests.support.live import stdlib_site

DATA = random.Random(3).randbytes(3 << 20)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_HEAD(self):
        self._record()
        self.send_response(200)
        self.send_header("Content-Length", str(len(DATA)))
        self.end_headers()

    def do_GET(self):
        self._record()
        if self.path == "/file":
            self._send(200, DATA)
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/file")
            self._send_body(b"moved")
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(DATA), 700_000):
                piece = DATA[start : start + 700_000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/until-close":  # no length: the body ends when the connection does
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(DATA)
            self.close_connection = True
        elif self.path == "/short":  # promises all of DATA, sends half, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(DATA)))
            self.end_headers()
            self.wfile.write(DATA[: len(DATA) // 2])
            self.close_connection = True
        elif self.path == "/stall":  # a few bytes, then nothing until the test ends
            self.send_response(200)
            self.send_header("Content-Length", str(len(DATA)))
            self.end_headers()
            self.wfile.write(DATA[:10])
            self.wfile.flush()
            self.server.stalled.set()
            self.server.release.wait(60)
            self.close_connection = True
        else:
            self._send(404, b"no such thing")

    def _record(self):
        self.server.seen.append((self.client_address, self.command, self.path, dict(self.headers)))

    def _send(self, status: int, body: bytes):
        self.send_response(status)
        self._send_body(body)

    def _send_body(self, body: bytes):
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def site():
    with stdlib_site(_Handler) as server:
        server.stalled, server.release = threading.Event(), threading.Event()
        server.connections = lambda: len({address for address, *_ in server.seen})
        try:
            yield server
        finally:
            server.release.set()  # a handler held in a stall must let go before shutdown


def client(**options) -> httpx.Client:
    options.setdefault("transport", Http11Transport())
    return httpx.Client(timeout=options.pop("timeout", 30), **options)


def read_all(response: httpx.Response, size: int = 256 << 10) -> bytes:
    """What a transfer does: read the body into its own reused buffer."""
    readinto, buffer, out = response.extensions[READINTO], bytearray(size), bytearray()
    while count := readinto(buffer):
        out += buffer[:count]
    return bytes(out)


def test_bodies_come_whole_and_the_connection_is_kept(site):
    with client() as http:
        assert http.get(site.url + "/file").content == DATA
        with http.stream("GET", site.url + "/file") as response:
            assert read_all(response) == DATA
            assert response.extensions[READINTO](bytearray(10)) == 0  # the end stays the end
        assert http.head(site.url + "/file").headers["content-length"] == str(len(DATA))
        assert http.get(site.url + "/file").content == DATA
    assert site.connections() == 1


@pytest.mark.parametrize("path", ["/chunked", "/until-close"])
def test_bodies_without_a_length(site, path):
    with client() as http:
        assert http.get(site.url + path).content == DATA
        with http.stream("GET", site.url + path) as response:
            assert read_all(response, 100_000) == DATA


def test_a_body_cut_short_is_a_protocol_error(site):
    with client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(site.url + "/short")
        with http.stream("GET", site.url + "/short") as response, pytest.raises(httpx.RemoteProtocolError):
            read_all(response)


def test_a_body_left_unread_does_not_leave_its_connection_for_the_next_request(site):
    with client() as http:
        with http.stream("GET", site.url + "/file") as response:
            assert response.extensions[READINTO](bytearray(1000)) > 0
        assert http.get(site.url + "/file").content == DATA
    assert site.connections() == 2


def test_redirects_headers_and_statuses_are_httpx_s(site):
    with client(follow_redirects=True, headers={"Accept-Encoding": "identity"}) as http:
        response = http.get(site.url + "/redirect", headers={"Range": "bytes=5-", "Authorization": "Bearer t"})
        missing = http.get(site.url + "/nothing")
    assert response.status_code == 200 and response.content == DATA
    assert str(response.url) == site.url + "/file" and [r.status_code for r in response.history] == [302]
    assert response.http_version == "HTTP/1.1" and response.reason_phrase == "OK"
    assert missing.status_code == 404 and missing.text == "no such thing"
    _, method, path, headers = site.seen[1]
    assert (method, path) == ("GET", "/file")
    assert headers["Range"] == "bytes=5-" and headers["Accept-Encoding"] == "identity"
    assert headers["Host"] == f"127.0.0.1:{site.server_port}"
    assert site.connections() == 1  # the redirect's own body was read, so its connection went on


def test_failures_raise_httpx_s_exceptions(site):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with client(timeout=httpx.Timeout(30, read=0.2)) as http:
        with pytest.raises(httpx.ConnectError):
            http.get(f"http://127.0.0.1:{port}/file")
        with http.stream("GET", site.url + "/stall") as response, pytest.raises(httpx.ReadTimeout):
            read_all(response)
        with pytest.raises(httpx.UnsupportedProtocol):
            http.get("ftp://127.0.0.1/file")


def test_closing_the_transport_interrupts_a_blocked_read(site):
    transport = Http11Transport()
    outcome: list = []

    def read() -> None:
        with client(transport=transport, timeout=300) as http:
            try:
                with http.stream("GET", site.url + "/stall") as response:
                    read_all(response)
            except httpx.TransportError as exc:
                outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert site.stalled.wait(30)
    transport.close()  # from another thread, as Transfer.abort does
    reader.join(30)
    assert not reader.is_alive() and len(outcome) == 1


# -- TLS ------------------------------------------------------------------------------------------------------


@pytest.fixture
def tls_site(tmp_path):
    """The same site over TLS, with a certificate for `models.example` only (no IP address)."""
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=models.example",
            "-addext",
            "subjectAltName=DNS:models.example",
        ],
        check=True,
        capture_output=True,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.seen, server.stalled, server.release = [], threading.Event(), threading.Event()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.trust = ssl.create_default_context(cafile=str(cert))
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def to_loopback(host, port, *args, **kwargs):
    assert host == "models.example"
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]


def test_tls_checks_the_certificate_against_the_host_name_of_a_pinned_connection(tls_site):
    # the name resolves (once, checked) to loopback; the certificate must still be for the name
    backend = PublicOnlyBackend(resolve=to_loopback, check=lambda host, port, *, resolve: ["127.0.0.1"])
    transport = Http11Transport(connect=backend.connect, ssl_context=tls_site.trust)
    port = tls_site.server_port
    with client(transport=transport) as http:
        assert http.get(f"https://models.example:{port}/file").content == DATA
        with http.stream("GET", f"https://models.example:{port}/file") as response:
            assert read_all(response, 1 << 20) == DATA
        with pytest.raises(httpx.ConnectError, match="(?i)certificate"):
            http.get(f"https://127.0.0.1:{port}/file")  # the right server, but not the name it proves


def test_tls_refuses_a_certificate_nobody_vouches_for(tls_site):
    backend = PublicOnlyBackend(resolve=to_loopback, check=lambda host, port, *, resolve: ["127.0.0.1"])
    with client(transport=Http11Transport(connect=backend.connect)) as http, pytest.raises(httpx.ConnectError):
        http.get(f"https://models.example:{tls_site.server_port}/file")  # self-signed, not in the CA bundle
