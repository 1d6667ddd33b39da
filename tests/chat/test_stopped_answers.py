"""An answer whose stream is closed at any point, even right as it starts, is stored with the
status its caller gave (never left `streaming`, which would show it as being written forever)."""

from __future__ import annotations

import pytest

from jarvis.chat.service import Started, Token
from jarvis.services import Services
from tests.support.ollama_server import OllamaServer


@pytest.fixture(scope="module")
def endless_engine():
    engine = OllamaServer({"endless": "endless"}).start()
    yield engine
    engine.stop()


@pytest.fixture
async def services(make_settings, endless_engine):
    started = await Services.start(make_settings(ollama_host=endless_engine.host, load_on_start=False))
    yield started
    await started.close()


async def stored(services: Services, session_id: str) -> list[tuple[str, str, str]]:
    return [(m.role, m.status, m.content) for m in await services.chat.history(session_id)]


async def test_an_answer_closed_as_it_starts_is_stored_as_cancelled(services):
    reply = await services.chat.prepare("Count for ever", model="ollama/endless", create_missing=True)
    reply.stop_status = "cancelled"  # what the WebSocket sets before it stops an answer
    events = reply.events()
    started = await anext(events)
    assert isinstance(started, Started)
    await events.aclose()  # stopped while the client was being told the answer started
    assert await stored(services, started.session_id) == [
        ("user", "complete", "Count for ever"),
        ("assistant", "cancelled", ""),
    ]


async def test_an_answer_closed_mid_way_keeps_its_text_and_the_callers_status(services):
    reply = await services.chat.prepare("Count for ever", model="ollama/endless", create_missing=True)
    events = reply.events()  # stop_status stays "disconnected": the client went away
    started = await anext(events)
    tokens = []
    async for event in events:
        if isinstance(event, Token):
            tokens.append(event.text)
            if len(tokens) == 3:
                break
    await events.aclose()
    [user, answer] = await stored(services, started.session_id)
    assert answer[:2] == ("assistant", "disconnected") and answer[2] == "".join(tokens)
