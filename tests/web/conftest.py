"""Browser tests of the web console: Debian's Chromium driven by Playwright (no browser
download), against real servers on loopback with the bundled model.

Every page a test opens records the browser console; a test fails when an error appears
there (or an uncaught exception), unless the test names that message as expected.
Screenshots go to `test-artifacts/web/` (git-ignored; `JARVIS_TEST_ARTIFACTS` moves it).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from jarvis.config import Settings
from tests.conftest import fresh_store
from tests.support.chromium import CHROMIUM, FLAGS
from tests.support.live import LiveServer

ARTIFACTS = (
    Path(os.environ.get("JARVIS_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")) / "web"
)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 60_000  # the slowest thing a test waits for: an answer of the model on two busy cores


@pytest.fixture(scope="session")
def playwright_instance():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the dev extra installs playwright")
    with sync_api.sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance):
    """Chromium with a fresh profile (Playwright gives each launch a new user data dir)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `scripts/install.sh --dev` installs Debian's chromium")
    browser = playwright_instance.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
    yield browser
    browser.close()


class Console:
    """The browser console of one page: errors and uncaught exceptions."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.expected: list[re.Pattern] = []

    def record(self, message) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def expect(self, pattern: str) -> None:
        """An error message this test provokes on purpose (e.g. a refused key's 401)."""
        self.expected.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.expected)]


@pytest.fixture
def open_console(browser):
    """`open_console(url, viewport=…, theme=…, locale=…)` → (page, Console) in a fresh
    browser context; the test fails if the console shows an unexpected error."""
    opened = []

    def make(url: str, *, viewport=DESKTOP, theme="light", locale="en-US"):
        context = browser.new_context(viewport=viewport, color_scheme=theme, locale=locale)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        console = Console()
        page.on("console", console.record)
        page.on("pageerror", lambda error: console.errors.append(f"uncaught: {error}"))
        opened.append((context, console))
        page.goto(url)
        return page, console

    yield make
    problems = []
    for context, console in opened:
        problems += console.unexpected()
        context.close()
    assert not problems, f"errors in the browser console: {problems}"


def screenshot(page, name: str) -> Path:
    """Keep a screenshot as a test artifact (and return its path)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def console_server(tmp_path_factory, models_dir, **values) -> LiveServer:
    """A live server on its own data dir and model store (tests delete and add models)."""
    root = tmp_path_factory.mktemp("console")
    settings = {
        "data_dir": root / "data",
        "models_path": fresh_store(root / "store", models_dir),
        "default_model": "gemma3:270m",  # the fast base model, as the other tests
        "log_level": "WARNING",
        **values,
    }
    return LiveServer(Settings.build(env_file=None, **settings)).start()
