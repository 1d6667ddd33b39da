"""Downloads connect only to the addresses the public-address check approved: the check and the
connection share one DNS answer, so a name that answers "public" to the check and "127.0.0.1"
to the connection (DNS rebinding) gets nowhere."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from jarvis.errors import InvalidInput
from jarvis.models.pinning import PublicOnlyBackend, pinned_transport
from tests.support.live import stdlib_site


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.server.seen.append(self.headers["Host"])
        body = b"hello from loopback"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_site():
    with stdlib_site(_Hello) as server:
        yield server


class Rebinding:
    """A resolver for `models.example` (a name no real DNS answers offline) whose answers are
    queued: each lookup takes the next one."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.lookups = 0

    def __call__(self, host, port, *args, **kwargs):
        assert host == "models.example"
        self.lookups += 1
        address = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]


def fetch(backend: PublicOnlyBackend, url: str) -> httpx.Response:
    with httpx.Client(transport=pinned_transport(backend), timeout=5) as http:
        return http.get(url)


def test_a_name_that_resolves_to_loopback_is_refused_before_connecting(loopback_site):
    resolver = Rebinding("127.0.0.1")
    with pytest.raises(InvalidInput, match="loopback or private"):
        fetch(PublicOnlyBackend(resolve=resolver), f"http://models.example:{loopback_site.server_port}/m.gguf")
    assert loopback_site.seen == []


def test_the_connection_goes_to_the_address_that_was_checked(loopback_site):
    # Let loopback pass the check (as JARVIS_ALLOW_INSECURE_URLS would) to see where the
    # connection goes: to the checked answer, looked up once; the second, different answer a
    # rebinding DNS server would give is never asked for.
    checked: list[list[str]] = []

    def allow_any(host, port, *, resolve):
        addresses = [info[4][0] for info in resolve(host, port, type=socket.SOCK_STREAM)]
        checked.append(addresses)
        return addresses

    resolver = Rebinding("127.0.0.1", "10.9.9.9")
    response = fetch(
        PublicOnlyBackend(resolve=resolver, check=allow_any), f"http://models.example:{loopback_site.server_port}/m"
    )
    assert response.text == "hello from loopback"
    assert resolver.lookups == 1 and checked == [["127.0.0.1"]]
    assert loopback_site.seen == [f"models.example:{loopback_site.server_port}"]  # the URL's name, the checked address


def test_trusted_hosts_connect_as_usual(loopback_site):
    backend = PublicOnlyBackend(exempt=["LOCALHOST"])
    assert fetch(backend, f"http://localhost:{loopback_site.server_port}/").status_code == 200
    with pytest.raises(InvalidInput):  # the same server under a name that is not trusted
        fetch(backend, f"http://127.0.0.1:{loopback_site.server_port}/")
    assert loopback_site.seen == [f"localhost:{loopback_site.server_port}"]
