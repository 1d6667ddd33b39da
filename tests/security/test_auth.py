"""API keys, loopback-only without them, DNS-rebinding defence, and refusing an exposed bind."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from jarvis.api.security import check_bind
from tests.support.live import LiveServer

KEY = "s3cret-key-for-tests"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, models_dir):
    from jarvis.config import Settings

    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text("alice:alice-key-123\nbob:bob-key-4567\n")
    settings = Settings.build(
        env_file=None,
        data_dir=tmp_path_factory.mktemp("auth"),
        models_path=models_dir,
        api_key=KEY,
        api_keys_file=keys,
        log_level="WARNING",
        default_model="gemma3:270m",
    )
    server = LiveServer(settings).start()
    yield server
    server.stop()


@pytest.mark.parametrize("path", ["/api/chat/sessions", "/v1/models", "/api/tags", "/api/models", "/api/plugins"])
async def test_protected_paths_need_a_key(keyed, path):
    async with httpx.AsyncClient(base_url=keyed.url) as http:
        missing = await http.get(path)
        wrong = await http.get(path, headers={"Authorization": "Bearer nope"})
        right = await http.get(path, headers={"Authorization": f"Bearer {KEY}"})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert right.status_code == 200


async def test_health_is_open_but_says_little(keyed):
    async with httpx.AsyncClient(base_url=keyed.url) as http:
        public = (await http.get("/api/health")).json()
        private = (await http.get("/api/health", headers={"Authorization": f"Bearer {KEY}"})).json()
    assert set(public) == {"status", "version"}
    assert private["active_model"] == "gemma3:270m"


async def test_named_users_from_the_keys_file(keyed):
    async with httpx.AsyncClient(base_url=keyed.url) as http:
        ok = await http.get("/api/chat/sessions", headers={"Authorization": "Bearer bob-key-4567"})
    assert ok.status_code == 200


async def test_websocket_with_header_or_subprotocol(keyed):
    url = keyed.ws_url
    with pytest.raises(InvalidStatus):
        async with connect(url):
            pass
    async with connect(url, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
        assert '"connection"' in await ws.recv()
    async with connect(url, subprotocols=["jarvis", f"bearer.{KEY}"]) as ws:
        assert ws.subprotocol == "jarvis"
        assert '"connection"' in await ws.recv()


async def test_dns_rebinding_host_is_refused(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        evil = await http.get("/api/chat/sessions", headers={"Host": "evil.example:5050"})
        local = await http.get("/api/chat/sessions", headers={"Host": f"localhost:{server.port}"})
    assert evil.status_code == 403 and evil.json()["error"]["code"] == "forbidden_host"
    assert local.status_code == 200


def test_exposed_bind_without_key_refuses_to_start(make_settings):
    with pytest.raises(SystemExit, match="JARVIS_API_KEY"):
        check_bind(make_settings(), "0.0.0.0")
    check_bind(make_settings(), "127.0.0.1")
    check_bind(make_settings(api_key=KEY), "0.0.0.0")
    check_bind(make_settings(insecure=True), "0.0.0.0")
