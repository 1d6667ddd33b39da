"""Every view in light and dark, on a desktop and a phone-sized screen, without console
errors; English and German; the keyboard; accessible names on every control."""

from __future__ import annotations

import httpx
import pytest

from tests.web.conftest import DESKTOP, PHONE, console_server, screenshot

# each view, and what shows that it has drawn its data
VIEWS = {
    "chat": "article.message.assistant",
    "models": "tr[data-installed]",
    "plugins": "section.plugin",
    "memory": "[data-stat=total]",
    "logs": "table.logs tbody tr",
    "status": "[data-stat=status]",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir):
    live = console_server(tmp_path_factory, models_dir, default_max_tokens=24)
    session = httpx.post(f"{live.url}/api/chat/sessions", json={"title": "Arithmetic"}).json()
    httpx.post(f"{live.url}/api/chat/messages", json={"sessionId": session["id"], "message": "/calc 2*(3+4)"})
    httpx.post(f"{live.url}/api/memory", json={"content": "The user prefers short answers.", "kind": "preference"})
    live.session_id = session["id"]
    yield live
    live.stop()


UNNAMED = """() => [...document.querySelectorAll('button, input, select, textarea, a[href]')]
  .filter(e => e.offsetParent !== null || e.getClientRects().length)
  .filter(e => !(e.getAttribute('aria-label') || e.labels?.length || e.textContent.trim() || e.title))
  .map(e => e.outerHTML.slice(0, 120))"""


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_every_view(server, open_console, theme, screen):
    viewport = DESKTOP if screen == "desktop" else PHONE
    page, _ = open_console(f"{server.url}/#/chat/{server.session_id}", viewport=viewport, theme=theme)
    page.get_by_role("heading", name="Arithmetic").wait_for()
    assert page.evaluate("document.documentElement.dataset.theme") == theme
    for view in VIEWS:
        page.goto(f"{server.url}/#/{view}" if view != "chat" else f"{server.url}/#/chat/{server.session_id}")
        page.locator(VIEWS[view]).first.wait_for()
        assert page.evaluate(UNNAMED) == [], f"controls without an accessible name on {view}"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], f"{view} is wider than the screen ({width} px)"
        screenshot(page, f"{view}-{screen}-{theme}")
    if screen == "phone":
        page.get_by_role("button", name="Menu").click()
        page.get_by_role("link", name="Models").wait_for()
        screenshot(page, f"menu-{screen}-{theme}")


def test_german_from_the_browser_and_the_switch(server, open_console):
    page, _ = open_console(f"{server.url}/#/models", locale="de-DE")
    page.get_by_role("heading", name="Modelle").wait_for()
    assert page.evaluate("document.documentElement.lang") == "de"
    page.get_by_role("link", name="Gedächtnis").click()
    page.get_by_role("heading", name="Erinnerung hinzufügen").wait_for()
    page.locator(".memory-item").first.wait_for()
    assert "Vorliebe" in page.locator(".memory-item").first.inner_text()
    screenshot(page, "memory-desktop-light-de")
    page.get_by_role("combobox", name="Sprache").select_option("en")
    page.get_by_role("heading", name="Add a memory").wait_for()
    page.reload()
    page.get_by_role("heading", name="Add a memory").wait_for()  # the choice is remembered


def test_keyboard_enter_sends_shift_enter_adds_a_line(server, open_console):
    page, _ = open_console(server.url)
    box = page.get_by_label("Message", exact=True)
    box.focus()
    page.keyboard.type("/calc 1+")
    page.keyboard.press("Shift+Enter")
    assert box.input_value() == "/calc 1+\n"
    page.keyboard.press("Backspace")
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('article.message.assistant[data-status=complete]')?.textContent.includes('3')"
    )
    assert box.input_value() == ""
