"""The chat view while every slot of the engine is busy: the answer says its place in the
queue, then streams once a slot frees."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.support.clients import LONG_ANSWER
from tests.web.conftest import console_server, screenshot
from tests.web.test_chat import ask, last_answer


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory, models_dir):
    live = console_server(tmp_path_factory, models_dir, parallel=1, default_max_tokens=24)
    yield live
    live.stop()


def test_a_waiting_answer_shows_its_place_in_the_queue(one_slot, open_console):
    page, _ = open_console(one_slot.url)
    page.get_by_label("Message", exact=True).wait_for()
    busy = {"message": LONG_ANSWER, "stream": True, "temperature": 0, "max_tokens": 160}

    def hold_the_slot() -> None:
        with httpx.stream("POST", one_slot.url + "/api/chat/messages", json=busy, timeout=300) as response:
            for _ in response.iter_lines():
                pass

    holder = threading.Thread(target=hold_the_slot)
    holder.start()
    try:
        with httpx.Client(base_url=one_slot.url, timeout=30) as http:
            for _ in range(600):
                if http.get("/api/health").json()["slots"]["busy"] == 1:
                    break
                page.wait_for_timeout(100)
        ask(page, "The capital of France is")
        note = last_answer(page).locator(".message-note")
        note.filter(has_text="position 1 in the queue").wait_for()
        screenshot(page, "chat-queued-desktop-light")
        page.wait_for_selector("article.message.assistant[data-status=complete]")
        assert last_answer(page).locator(".markdown").inner_text().strip()
    finally:
        holder.join(timeout=300)
