"""The models view in Chromium against the test hub: pull with a variant, the progress bar up
to 100 %, cancel, resume, activate, delete, and errors in words."""

from __future__ import annotations

import httpx
import pytest

from tests.support.gguf_files import gguf_bytes
from tests.support.hub import Fault, Hub
from tests.web.conftest import console_server, screenshot

MB = 1_000_000


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    hub = Hub(tmp_path_factory.mktemp("hub")).start()
    hub.add_hf_repo(
        "test/small-GGUF",
        {
            "small-Q4_K_M.gguf": gguf_bytes(name="small", payload=3 * MB),
            "small-Q8_0.gguf": gguf_bytes(name="small8", payload=5 * MB, file_type=7),
        },
    )
    hub.add_hf_repo("test/slow-GGUF", {"slow-Q4_K_M.gguf": gguf_bytes(name="slow", payload=40 * MB)})
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir, hub):
    live = console_server(
        tmp_path_factory,
        models_dir,
        hf_endpoint=hub.url,
        ollama_registry=hub.url,
        allow_insecure_urls=True,
        load_on_start=False,
        disk_reserve_mb=0,
        download_stall_seconds=5.0,
        download_backoff_seconds=0.05,
    )
    yield live
    live.stop()


def models_page(server, open_console):
    page, console = open_console(f"{server.url}/#/models")
    page.get_by_role("heading", name="Installed").wait_for()
    page.locator("tr[data-installed='gemma3:270m']").wait_for()
    return page, console


def test_installed_models_catalog_and_free_disk(server, open_console):
    page, _ = models_page(server, open_console)
    row = page.locator("tr[data-installed='gemma3:270m']")
    assert "base" in row.inner_text() and "Q4_K_M" in row.inner_text() and "253 MB" in row.inner_text()
    assert "instruct" in page.locator("tr[data-installed='qwen2.5-coder:0.5b']").inner_text()
    assert page.get_by_text("Free disk:").inner_text().startswith("Free disk:")
    catalog = page.locator("tr[data-catalog='qwen2.5-1.5b']")
    entry = next(
        m for m in httpx.get(f"{server.url}/api/models/available").json()["models"] if m["model_key"] == "qwen2.5-1.5b"
    )
    assert entry["size"] < 1e9 and entry["memory"] > 1e9
    shown = catalog.inner_text()
    assert (
        "1.5B" in shown and f"{round(entry['size'] / 1e6)} MB" in shown and f"{entry['memory'] / 1e9:.2f} GB" in shown
    )
    screenshot(page, "models-desktop-light")


def test_pull_a_variant_and_watch_the_bar_reach_100(server, open_console, hub):
    page, _ = models_page(server, open_console)
    page.get_by_role("textbox", name="Model").fill("hf.co/test/small-GGUF")
    page.get_by_role("button", name="Show variants").click()
    page.get_by_text("2 variants found.").wait_for()
    choice = page.get_by_role("combobox", name="Quantization")
    assert choice.input_value() == "Q4_K_M"  # the recommended one first
    choice.select_option("Q8_0")
    page.get_by_role("button", name="Pull", exact=True).click()
    job = page.locator(".job", has_text="hf.co/test/small-GGUF:Q8_0")
    job.wait_for()
    page.wait_for_function(
        "() => { const j = [...document.querySelectorAll('.job')].find(e => e.textContent.includes('small-GGUF:Q8_0'));"
        " return j && j.dataset.status === 'completed' && j.querySelector('progress').value === 100 }"
    )
    assert job.get_by_role("progressbar").get_attribute("aria-valuetext") == "100 %"
    assert "100 %" in job.inner_text() and "completed" in job.inner_text()
    page.locator("tr[data-installed='hf.co/test/small-GGUF:Q8_0']").wait_for()  # the installed list follows
    assert hub.bytes_sent("small-Q8_0.gguf") >= 5 * MB


def test_cancel_a_pull_then_resume_it(server, open_console, hub):
    hub.faults["slow-Q4_K_M.gguf"] = Fault(throttle_bps=2 * MB)
    page, _ = models_page(server, open_console)
    page.get_by_role("textbox", name="Model").fill("hf.co/test/slow-GGUF")
    page.get_by_role("button", name="Pull", exact=True).click()
    job = page.locator(".job", has_text="slow-GGUF")
    page.wait_for_function(
        "() => { const j = [...document.querySelectorAll('.job')].find(e => e.textContent.includes('slow-GGUF'));"
        " return j && j.dataset.status === 'downloading' && j.querySelector('progress').value > 0 }"
    )
    assert "MB/s" in job.inner_text() and "left" in job.inner_text()
    screenshot(page, "models-downloading-desktop-light")
    job.get_by_role("button", name="Pause hf.co/test/slow-GGUF:Q4_K_M").click()
    page.wait_for_selector(".job[data-status=cancelled]")
    paused_at = page.locator(".job[data-status=cancelled] progress").evaluate("p => p.value")
    assert 0 < paused_at < 100
    hub.faults.clear()
    job.get_by_role("button", name="Resume hf.co/test/slow-GGUF:Q4_K_M").click()
    page.wait_for_selector(".job[data-model='hf.co/test/slow-GGUF'][data-status=completed]")
    page.locator("tr[data-installed='hf.co/test/slow-GGUF:Q4_K_M']").wait_for()
    # the resumed pull fetched the rest, not the file again
    assert hub.bytes_sent("slow-Q4_K_M.gguf") < 1.5 * 40 * MB


def test_cancel_discards_a_pull(server, open_console, hub):
    hub.add_hf_repo("test/cancel-GGUF", {"cancel-Q4_K_M.gguf": gguf_bytes(name="cancel", payload=40 * MB)})
    hub.faults["cancel-Q4_K_M.gguf"] = Fault(throttle_bps=1 * MB)
    page, _ = models_page(server, open_console)
    page.get_by_role("textbox", name="Model").fill("hf.co/test/cancel-GGUF")
    page.get_by_role("button", name="Pull", exact=True).click()
    page.wait_for_selector(".job[data-model='hf.co/test/cancel-GGUF'][data-status=downloading]")
    page.get_by_role("button", name="Cancel hf.co/test/cancel-GGUF:Q4_K_M").click()
    page.wait_for_selector(".job[data-model='hf.co/test/cancel-GGUF'][data-status=cancelled]")
    models = httpx.get(f"{server.url}/api/models").json()["models"]
    assert not any(m["name"].startswith("hf.co/test/cancel-GGUF") for m in models)
    hub.faults.clear()


def test_activate_and_delete(server, open_console):
    page, _ = models_page(server, open_console)
    page.get_by_role("button", name="Activate gemma3:270m").click()
    page.get_by_text("gemma3:270m is active").wait_for()
    page.locator("tr[data-installed='gemma3:270m'] .badge.ok").wait_for()
    assert httpx.get(f"{server.url}/api/models/active").json()["model"]["name"] == "gemma3:270m"

    httpx.post(f"{server.url}/api/models/download", json={"model_key": "hf.co/test/small-GGUF"})
    page.reload()
    row = page.locator("tr[data-installed='hf.co/test/small-GGUF:Q4_K_M']")
    row.wait_for()
    page.get_by_role("button", name="Delete hf.co/test/small-GGUF:Q4_K_M").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_text("hf.co/test/small-GGUF:Q4_K_M was deleted.").wait_for()
    row.wait_for(state="detached")
    names = [m["name"] for m in httpx.get(f"{server.url}/api/models").json()["models"]]
    assert "hf.co/test/small-GGUF:Q4_K_M" not in names


def test_errors_are_shown_in_words(server, open_console):
    page, console = models_page(server, open_console)
    console.expect(r"status of (404|422)")
    page.get_by_role("textbox", name="Model").fill("hf.co/test/no-such-GGUF")
    page.get_by_role("button", name="Pull", exact=True).click()
    status = page.get_by_role("status").filter(has_text="That model is not installed or does not exist")
    status.wait_for()
    # a file that llama.cpp cannot load
    httpx.post(f"{server.url}/api/models/download", json={"model_key": "hf.co/test/small-GGUF"})
    page.reload()
    page.get_by_role("button", name="Activate hf.co/test/small-GGUF:Q4_K_M").click()
    page.get_by_role("status").filter(has_text="The model file cannot be loaded").wait_for()
