"""The web console in Chromium: what the first load costs and whether streaming stays smooth.

Run by hand (never by pytest):  .venv/bin/python bench/web.py [--tokens 500] [--models-dir DIR]

A server on a temporary data dir (the bundled models, `gemma3:270m` as default: a base model
that keeps writing), Debian's chromium through playwright, a fresh profile:
  bytes   everything transferred for the first load of the chat view (compressed, as sent;
          the Chrome DevTools Protocol's encodedDataLength of every response), goal <= 250 KB
  ready   milliseconds from navigation start until the message box is there and focused
  long    main-thread tasks over 50 ms (Long Tasks API) while a --tokens answer streams, goal none
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from jarvis.app import create_app
from jarvis.config import Settings
from jarvis.models.bundled import ensure_bundled
from jarvis.models.store import ModelStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.chromium import CHROMIUM, FLAGS  # noqa: E402

PROMPT = "Count to a thousand: " + " ".join(map(str, range(1, 200)))
WATCH = """
window.__ready = null; window.__long = [];
new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__long.push([e.startTime, e.duration]); })
  .observe({ type: "longtask", buffered: true });
new MutationObserver((_, observer) => {
  const box = document.querySelector("textarea.composer-input");
  if (box && document.activeElement === box) { window.__ready = performance.now(); observer.disconnect(); }
}).observe(document, { subtree: true, childList: true, attributes: true });
document.addEventListener("focusin", () => {
  const box = document.querySelector("textarea.composer-input");
  if (box && document.activeElement === box && window.__ready === null) window.__ready = performance.now();
}, true);
"""


def serve(settings: Settings) -> tuple[uvicorn.Server, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--models-dir", type=Path, help="a model store holding the bundled models (default: a new one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = args.models_dir or Path(tmp) / "models"
        if not args.models_dir:
            ensure_bundled(ModelStore(models))
        settings = Settings.build(
            env_file=None,
            data_dir=Path(tmp) / "data",
            models_path=models,
            default_model="gemma3:270m",
            default_max_tokens=args.tokens,
            log_level="WARNING",
        )
        server, url = serve(settings)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.add_init_script(WATCH)
                cdp = page.context.new_cdp_session(page)
                cdp.send("Network.enable")
                sizes: dict[str, int] = {}
                cdp.on("Network.loadingFinished", lambda e: sizes.__setitem__(e["requestId"], e["encodedDataLength"]))
                page.goto(url, wait_until="networkidle")
                page.wait_for_function("window.__ready !== null")
                ready_ms = page.evaluate("window.__ready")
                loaded = sum(sizes.values())
                before = page.evaluate("window.__long.length")
                box = page.locator("textarea.composer-input")
                box.fill(PROMPT)
                box.press("Enter")
                page.wait_for_selector(
                    "article.message.assistant[data-status=streaming] .markdown:not(:has(.typing))", timeout=120_000
                )
                started = time.perf_counter()
                page.wait_for_selector("article.message.assistant:not([data-status=streaming])", timeout=600_000)
                streamed = time.perf_counter() - started
                long_tasks = page.evaluate("window.__long").__getitem__(slice(before, None))
                session_id = page.evaluate("location.hash").rsplit("/", 1)[-1]
                browser.close()
            import httpx

            stored = httpx.get(f"{url}/api/chat/sessions/{session_id}").json()["messages"][-1]
        finally:
            server.should_exit = True
    tokens = stored.get("completion_tokens")
    worst = max((d for _, d in long_tasks), default=0)
    print(
        f"first load of the chat view: {loaded / 1000:.1f} KB transferred ({len(sizes)} responses)  "
        f"goal <= 250 KB: {'met' if loaded <= 250_000 else 'MISSED'}"
    )
    print(f"message box ready: {ready_ms:.0f} ms after navigation start (loopback)")
    print(
        f"streaming an answer of {tokens} tokens ({len(stored['content'])} characters, {streamed:.1f} s): "
        f"{len(long_tasks)} long tasks > 50 ms"
        f" (longest {worst:.0f} ms)  goal none: {'met' if not long_tasks else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
