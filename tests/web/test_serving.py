"""How the console is served: HTML for browsers, the JSON root for everyone else, security
headers, compression, and nothing outside the console's folder."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.web.conftest import console_server

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir):
    live = console_server(tmp_path_factory, models_dir, load_on_start=False)
    yield live
    live.stop()


def assert_secure(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["script-src"] == "'self'"  # no inline script, no eval
    assert directives["frame-ancestors"] == "'none'"
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_a_browser_gets_the_console_and_a_client_the_json_root(server):
    page = httpx.get(server.url + "/", headers={"Accept": BROWSER})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/console/js/main.js">' in page.text
    assert "<script>" not in page.text and " style=" not in page.text  # nothing inline
    assert_secure(page)
    for accept in (None, "application/json", "*/*", "application/json, text/html"):
        root = httpx.get(server.url + "/", headers={"Accept": accept} if accept else {})
        assert root.headers["content-type"] == "application/json", accept
        assert root.json()["name"] == "JARVIS Core"


def test_console_files_are_compressed_typed_and_revalidated(server):
    plain = httpx.get(server.url + "/console/js/main.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/javascript")
    assert_secure(plain)
    packed = httpx.get(server.url + "/console/js/main.js", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.content == plain.content  # httpx decodes it
    again = httpx.get(server.url + "/console/js/main.js", headers={"If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304
    assert httpx.get(server.url + "/console/app.css").headers["content-type"].startswith("text/css")


def test_nothing_outside_the_console_folder(server):
    for path in (
        "/console/../routes.py",
        "/console/%2e%2e/routes.py",
        "/console/..%2Froutes.py",
        "/console/nope.js",
        "/console/",
    ):
        response = httpx.get(server.url + path)
        assert response.status_code == 404, path
        assert "def " not in response.text


def test_the_console_works_without_a_key_only_on_loopback_names(server):
    # the security middleware still guards it: a DNS-rebinding Host is refused
    refused = httpx.get(server.url + "/", headers={"Accept": BROWSER, "Host": "evil.example"})
    assert refused.status_code == 403


def test_everything_the_page_loads_is_local(server):
    """No CDN, font or script from elsewhere: every src/href of the page and every import of
    its modules is a path on this server."""
    page = httpx.get(server.url + "/", headers={"Accept": BROWSER}).text
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert links and all(link.startswith("/console/") or link.startswith("#") for link in links), links
    seen, todo = set(), [link for link in links if link.endswith(".js")]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        source = httpx.get(server.url + path)
        assert source.status_code == 200, path
        base = path.rsplit("/", 1)[0]
        for target in re.findall(r'(?:from|import)\s*\(?\s*"(\.{1,2}/[^"]+)"', source.text):
            parts = (base + "/" + target).split("/")
            resolved = []
            for part in parts:
                if part == "..":
                    resolved.pop()
                elif part not in (".", ""):
                    resolved.append(part)
            todo.append("/" + "/".join(resolved))
        assert not re.search(r'(?:from|import)\s*\(?\s*"https?:', source.text), path
    assert len(seen) >= 10  # the views, the shell and the vendored libraries
