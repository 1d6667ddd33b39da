"""No secret reaches storage: configured keys and tokens, Authorization headers, URL query
parameters, arguments and extras of log calls, exception tracebacks. Checked in the database
itself, on both backends."""

from __future__ import annotations

import logging
import os
import uuid

import pytest
from sqlalchemy import select

from jarvis.config import Settings
from jarvis.storage.db import Database
from jarvis.storage.tables import LogEntry
from tests.conftest import BACKENDS
from tests.logs.conftest import marker, wait_for_records
from tests.support.clients import client
from tests.support.live import LiveServer

API_KEY = f"jarvis-key-{uuid.uuid4().hex}"
HF_TOKEN = f"hf_{uuid.uuid4().hex}"
OPENAI_KEY = f"openai-{uuid.uuid4().hex}"
# look like credentials but are configured nowhere
LOOSE_HF = f"hf_{uuid.uuid4().hex}Z"
LOOSE_SK = f"sk-proj-{uuid.uuid4().hex}"
LOOSE_BEARER = f"tok.{uuid.uuid4().hex}"
LOOSE_QUERY = f"q{uuid.uuid4().hex}"
SECRETS = [API_KEY, HF_TOKEN, OPENAI_KEY, LOOSE_HF, LOOSE_SK, LOOSE_BEARER, LOOSE_QUERY]


@pytest.fixture(scope="module", params=BACKENDS)
def secret_server(request, tmp_path_factory, models_dir):
    values = {
        "data_dir": tmp_path_factory.mktemp(f"secrets-{request.param}"),
        "models_path": models_dir,
        "load_on_start": False,
        "api_key": API_KEY,
        "hf_token": HF_TOKEN,
        "openai_api_key": OPENAI_KEY,
    }
    if request.param == "postgres":
        cluster = request.getfixturevalue("postgres")
        values["database_url"] = cluster.create_database(f"jarvis_secrets_{os.getpid()}")
    live = LiveServer(Settings.build(env_file=None, log_level="INFO", **values)).start()
    yield live
    live.stop()


async def _all_text(settings: Settings) -> list[str]:
    db = Database(settings.db_url)
    try:
        async with db.session() as session:
            rows = list(await session.scalars(select(LogEntry)))
    finally:
        await db.close()
    return [" ".join(str(getattr(row, c.key)) for c in LogEntry.__table__.columns) for row in rows]


async def test_no_secret_is_ever_stored(secret_server):
    word = marker()
    log = logging.getLogger(f"jarvis.tests.{word}")
    log.setLevel(logging.INFO)
    auth = {"Authorization": f"Bearer {API_KEY}", "Proxy-Authorization": f"Basic {LOOSE_BEARER}"}
    async with client(secret_server) as http:
        http.headers["Authorization"] = f"Bearer {API_KEY}"  # the server wants its key
        # in headers and in the URL (query and path)
        response = await http.get(
            "/api/health",
            headers=auth,
            params={"api_key": API_KEY, "token": HF_TOKEN, "key": OPENAI_KEY, "password": LOOSE_QUERY, "word": word},
        )
        assert response.status_code == 200
        await http.get(f"/api/{word}/{HF_TOKEN}/{LOOSE_SK}", headers=auth)
        await http.get("/api/health", params={"access_token": LOOSE_QUERY, "word": word})

        # logged by code: message, args, extra, a traceback
        log.info("headers were %s", auth)
        log.warning("hub call with token %s and key %s for %s", HF_TOKEN, LOOSE_HF, word)
        log.warning("openai said: Authorization: Bearer %s", OPENAI_KEY)
        log.info("calling %s", f"https://x.example/v1?api_key={LOOSE_QUERY}&w={word}")
        detail = {"key": LOOSE_SK, "note": f"bearer {LOOSE_BEARER}"}
        log.error("extra fields %s", word, extra={"token": API_KEY, "detail": detail})
        try:
            raise PermissionError(f"upstream refused {HF_TOKEN} / {API_KEY} / {LOOSE_SK}")
        except PermissionError:
            log.exception("download of %s failed", word)

        await wait_for_records(http, 6, source=f"jarvis.tests.{word}")
        await wait_for_records(http, 3, q=word, source="jarvis.access")
        params = {"q": "PermissionError", "source": f"jarvis.tests.{word}"}
        traceback = (await http.get("/api/logs", params=params)).json()
    assert "Traceback" in traceback["records"][0]["message"]

    stored = await _all_text(secret_server.settings)
    assert len(stored) >= 9
    for text in stored:
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} stored in {text!r}"
    ours = [text for text in stored if word in text]
    assert len(ours) >= 9 and sum("[REDACTED]" in text for text in ours) >= 8
