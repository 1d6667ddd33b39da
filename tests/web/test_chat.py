"""The chat view in Chromium: a streamed answer of the bundled model, stop, sessions (switch,
rename, search, delete), regenerate, edit and resend, and text that must never become HTML."""

from __future__ import annotations

import httpx
import pytest

from tests.support.ollama_server import OllamaServer
from tests.web.conftest import console_server, screenshot

# The last answer is being written and shows streamed text (not the "…" shown until it starts).
STREAMING_TEXT = (
    "() => { const a = [...document.querySelectorAll('article.message.assistant')].pop();"
    " return a && a.dataset.status === 'streaming' && !a.querySelector('.markdown .typing')"
    " && a.querySelector('.markdown').textContent.trim().length > 0 }"
)
# The text of Markdown as the console renders it, and the text an answer shows (copy buttons aside).
RENDERED_TEXT = """async (content) => {
  const { renderMarkdown } = await import('/console/js/markdown.js');
  const box = document.createElement('div');
  box.append(renderMarkdown(content));
  return box.textContent;
}"""
SHOWN_TEXT = """(markdown) => {
  const copy = markdown.cloneNode(true);
  copy.querySelectorAll('.copy-button').forEach((button) => button.remove());
  return copy.textContent;
}"""
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>**bold**'


@pytest.fixture(scope="module")
def echo_engine():
    engine = OllamaServer({"echo": "echo", "endless": "endless"}).start()
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir, echo_engine):
    # answers of the bundled model are cut at 48 tokens: streamed, yet quick on two busy cores
    live = console_server(tmp_path_factory, models_dir, ollama_host=echo_engine.host, default_max_tokens=48)
    yield live
    live.stop()


def ask(page, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def last_answer(page):
    return page.locator("article.message.assistant").last


def test_a_streamed_answer_is_shown_as_it_comes_and_stored(server, open_console):
    page, _ = open_console(server.url)
    ask(page, "The capital of France is")
    answer = last_answer(page)
    # while it streams, the answer is marked as being written and already shows text
    page.wait_for_function(STREAMING_TEXT)
    page.wait_for_selector("article.message.assistant[data-status=complete]")
    text = answer.locator(".markdown").inner_text()
    assert text.strip()
    screenshot(page, "chat-answer-desktop-light")
    # what the page shows is what the server stored
    session_id = page.evaluate("location.hash").split("/")[-1]
    stored = httpx.get(f"{server.url}/api/chat/sessions/{session_id}").json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    assert stored["messages"][1]["status"] == "complete"
    # (as Markdown: the page's text is the stored content rendered the console's way, copy buttons aside)
    rendered = page.evaluate(RENDERED_TEXT, stored["messages"][1]["content"])
    shown = answer.locator(".markdown").evaluate(SHOWN_TEXT)
    assert " ".join(shown.split()) == " ".join(rendered.split())
    assert page.locator(".session-item[aria-current=page]").inner_text().startswith("The capital of France is")


def endless_chat(server, open_console, title):
    """A chat on the Ollama stand-in's `endless` model, which streams until it is stopped."""
    session = httpx.post(f"{server.url}/api/chat/sessions", json={"title": title, "model": "ollama/endless"}).json()
    page, console = open_console(f"{server.url}/#/chat/{session['id']}")
    page.get_by_role("heading", name=title).wait_for()
    return page


def test_stop_ends_the_answer_mid_way(server, open_console):
    page = endless_chat(server, open_console, "Stop me")
    ask(page, "Count for ever")
    page.wait_for_function(
        "() => { const a = [...document.querySelectorAll('article.message.assistant')].pop();"
        " return a && a.querySelector('.markdown').textContent.trim().split(/\\s+/).length >= 3 }"
    )
    page.get_by_role("button", name="Stop").click()
    stopped = page.locator("article.message.assistant[data-status=cancelled]")
    stopped.wait_for()
    assert "Stopped" in stopped.locator(".message-meta").inner_text()
    assert page.get_by_role("button", name="Stop").is_hidden()
    session_id = page.evaluate("location.hash").split("/")[-1]
    stored = httpx.get(f"{server.url}/api/chat/sessions/{session_id}").json()["messages"][-1]
    assert stored["status"] == "cancelled" and stored["content"].startswith("word0 word1 word2")
    assert "word4999" not in stored["content"]
    screenshot(page, "chat-stopped-desktop-light")


def test_escape_stops_the_answer(server, open_console):
    page = endless_chat(server, open_console, "Escape")
    ask(page, "Count for ever")
    page.wait_for_function(STREAMING_TEXT)
    page.keyboard.press("Escape")
    page.locator("article.message.assistant[data-status=cancelled]").wait_for()


def test_a_question_stopped_before_its_answer_started_is_not_lost(server, open_console):
    page = endless_chat(server, open_console, "Stopped at once")
    ask(page, "Count for ever")
    page.keyboard.press("Escape")  # the chat frame and the cancel reach the server back to back
    page.get_by_role("button", name="Stop").wait_for(state="hidden")
    session_id = page.evaluate("location.hash").split("/")[-1]
    stored = httpx.get(f"{server.url}/api/chat/sessions/{session_id}").json()["messages"]
    if stored:  # the answer had started: the question is stored, its answer cancelled
        assert [(m["role"], m["status"]) for m in stored][-1] == ("assistant", "cancelled")
        assert stored[-2]["content"] == "Count for ever"
        page.locator("article.message.assistant[data-status=cancelled]").wait_for()
    else:  # stopped before anything was stored: the question is back in the box, to send again
        assert page.get_by_label("Message", exact=True).input_value() == "Count for ever"


def test_sessions_switch_rename_search_and_delete(server, open_console):
    first = httpx.post(f"{server.url}/api/chat/sessions", json={"title": "Apples"}).json()
    httpx.post(f"{server.url}/api/chat/messages", json={"sessionId": first["id"], "message": "/calc 6*7"})
    second = httpx.post(f"{server.url}/api/chat/sessions", json={"title": "Bananas"}).json()
    httpx.post(f"{server.url}/api/chat/messages", json={"sessionId": second["id"], "message": "/calc 2+3"})
    page, _ = open_console(server.url)

    page.get_by_role("link", name="Apples").click()
    page.get_by_role("heading", name="Apples").wait_for()
    assert "42" in last_answer(page).inner_text()
    page.get_by_role("link", name="Bananas").click()
    page.get_by_role("heading", name="Bananas").wait_for()
    assert "5" in last_answer(page).inner_text()

    page.get_by_role("button", name="Rename").click()
    page.get_by_role("textbox", name="New name for this chat").fill("Yellow fruit")
    page.get_by_role("dialog").get_by_role("button", name="Rename").click()
    page.get_by_role("heading", name="Yellow fruit").wait_for()
    page.get_by_role("link", name="Yellow fruit").wait_for()
    assert httpx.get(f"{server.url}/api/chat/sessions/{second['id']}").json()["title"] == "Yellow fruit"

    search = page.get_by_role("searchbox", name="Search chats")
    search.fill("6*7")  # text of a message, not of a title
    page.wait_for_function("() => document.querySelectorAll('.session-item').length === 1")
    assert page.locator(".session-item").inner_text().startswith("Apples")
    search.fill("yellow")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.session-item')].map(e => e.textContent).join().includes('Yellow')"
        " && document.querySelectorAll('.session-item').length === 1"
    )
    search.fill("")

    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_role("heading", name="New chat").wait_for()
    assert httpx.get(f"{server.url}/api/chat/sessions/{second['id']}").status_code == 404
    page.get_by_role("link", name="Apples").wait_for()
    assert page.get_by_role("link", name="Yellow fruit").count() == 0


def test_regenerate_and_edit_replace_the_turn(server, open_console):
    page, _ = open_console(server.url)
    ask(page, "/calc 1+1")
    page.wait_for_selector("article.message.assistant[data-status=complete]")
    assert "2" in last_answer(page).inner_text()
    page.get_by_role("button", name="Regenerate").click()
    page.wait_for_function(
        "() => document.querySelectorAll('article.message.assistant[data-status=complete]').length === 1"
        " && !document.querySelector('article[data-status=streaming]')"
    )
    page.get_by_role("button", name="Edit").click()
    page.get_by_role("textbox", name="Edit your message").fill("/calc 10*10")
    page.get_by_role("button", name="Save and send").click()
    page.wait_for_function(
        "() => document.querySelector('article.message.assistant[data-status=complete]')?.textContent.includes('100')"
    )
    session_id = page.evaluate("location.hash").split("/")[-1]
    stored = httpx.get(f"{server.url}/api/chat/sessions/{session_id}").json()["messages"]
    assert [m["content"] for m in stored if m["role"] == "user"] == ["/calc 10*10"]
    assert len(stored) == 2


def test_markup_in_a_message_stays_text(server, open_console):
    page, _ = open_console(server.url)
    ask(page, f"/calc {XSS}")
    page.wait_for_selector("article.message.assistant[data-status=complete]")
    user = page.locator("article.message.user").last
    assert user.locator(".message-text").inner_text() == f"/calc {XSS}"
    assert user.locator("img, script, strong").count() == 0  # a user's text is never Markdown either
    assert page.locator("article img, article script").count() == 0
    assert page.evaluate("window.__xss") is None


def test_markup_in_a_model_answer_stays_text(server, open_console):
    # the Ollama stand-in's `echo` model answers "You said: <the message>": the model's text
    # carries the markup; Markdown still renders (the **bold** becomes <strong>)
    session = httpx.post(f"{server.url}/api/chat/sessions", json={"title": "Echo", "model": "ollama/echo"}).json()
    page, _ = open_console(f"{server.url}/#/chat/{session['id']}")
    page.get_by_role("heading", name="Echo").wait_for()
    assert page.get_by_label("Model", exact=True).input_value() == "ollama/echo"
    ask(page, XSS)
    answer = page.locator("article.message.assistant[data-status=complete]")
    answer.wait_for()
    text = answer.locator(".markdown").inner_text()
    assert '<img src=x onerror="window.__xss=1">' in text and "<script>window.__xss=2</script>" in text
    assert answer.locator("img, script").count() == 0
    assert answer.locator("strong").inner_text() == "bold"
    assert page.evaluate("window.__xss") is None
    screenshot(page, "chat-xss-desktop-light")


def test_code_blocks_get_a_copy_button_and_highlighting(server, open_console):
    session = httpx.post(f"{server.url}/api/chat/sessions", json={"title": "Code", "model": "ollama/echo"}).json()
    page, _ = open_console(f"{server.url}/#/chat/{session['id']}")
    page.get_by_role("heading", name="Code").wait_for()
    ask(page, "this:\n```python\ndef f(x):\n    return x * 2\n```")  # the echo starts with "You said: "
    block = page.locator("article.message.assistant[data-status=complete] .code-block")
    block.wait_for()
    assert block.locator(".hljs-keyword").first.inner_text() == "def"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    block.get_by_role("button", name="Copy code").click()
    assert page.evaluate("navigator.clipboard.readText()").strip() == "def f(x):\n    return x * 2"


def test_model_and_system_prompt_per_session(server, open_console):
    page, _ = open_console(server.url)
    page.get_by_label("Model", exact=True).select_option("ollama/echo:latest")  # as the stand-in lists it
    page.get_by_role("button", name="System prompt").click()
    page.get_by_role("textbox", name="System prompt").fill("Answer like a pirate.")
    page.get_by_role("button", name="Save").click()
    ask(page, "hello there")
    page.wait_for_selector("article.message.assistant[data-status=complete]")
    assert "You said: hello there" in last_answer(page).inner_text()
    session_id = page.evaluate("location.hash").split("/")[-1]
    stored = httpx.get(f"{server.url}/api/chat/sessions/{session_id}").json()
    assert stored["model"] == "ollama/echo:latest" and stored["system_prompt"] == "Answer like a pirate."
    page.get_by_label("Model", exact=True).select_option("gemma3:270m")
    page.get_by_text("This chat now uses gemma3:270m.").wait_for()
    assert httpx.get(f"{server.url}/api/chat/sessions/{session_id}").json()["model"] == "gemma3:270m"


def test_errors_are_shown_in_words(server, open_console):
    page, console = open_console(server.url)
    console.expect(r"status of 404")  # the browser logs the refused request itself
    # a session that is gone: the chat says so in words
    page.goto(f"{server.url}/#/chat/no-such-session")
    status = page.get_by_role("status").filter(has_text="This chat does not exist")
    status.wait_for()
    assert "session_not_found" not in status.inner_text()
