"""Transfer's body path, driven directly against the test hub: the state sidecar rewritten in
place (and read back to resume), proxy settings honoured, guarded connections pinned to
approved addresses, and abort interrupting a read that waits on a silent server."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from urllib.parse import urlsplit

import pytest

from jarvis.errors import InvalidInput
from jarvis.models.plan import RemoteFile
from jarvis.models.transfer import (
    STATE_PAGE,
    Transfer,
    TransferCancelled,
    TransferOptions,
)
from tests.support.gguf_files import gguf_bytes
from tests.support.hub import Fault
from tests.support.proxy import forward_proxy

MiB = 1 << 20


def serve(hub, name: str, size: int):
    data = gguf_bytes(payload=size, seed=len(name))
    return data, hub.add_file(f"/files/{name}", data)


def make(served, tmp_path, url: str | None = None, **kwargs) -> Transfer:
    options = TransferOptions(
        connections=2, min_segment=1 * MiB, backoff_base=0.01, stall_timeout=kwargs.pop("stall", 10)
    )
    remote = RemoteFile(file=served.name.rsplit("/", 1)[-1], url=url or served.url, size=served.size)
    return Transfer(remote, tmp_path / "x.partial", options=options, **kwargs)


def test_the_state_sidecar_is_one_page_rewritten_in_place(hub, tmp_path, monkeypatch):
    data, served = serve(hub, "inplace.gguf", 12 * MiB)
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda *args: (renames.append(args), real_replace(*args)))
    transfer = make(served, tmp_path)
    assert transfer.run() == hashlib.sha256(data).hexdigest()
    assert len(renames) == 1  # the first write; every progress save after it went in place
    raw = transfer.state_path.read_bytes()
    assert len(raw) == STATE_PAGE
    state = json.loads(raw)  # the padding is blanks, which JSON allows
    assert sum(done for _start, _end, done in state["segments"]) == len(data)


def test_a_padded_state_is_resumed(hub, tmp_path):
    data, served = serve(hub, "resume.gguf", 6 * MiB)
    half = len(data) // 2
    partial = tmp_path / "x.partial"
    partial.write_bytes(data[:half] + bytes(len(data) - half))
    state = {"url": served.url, "digest": None, "size": len(data), "ranged": True, "segments": [[0, len(data), half]]}
    partial.with_name("x.partial.json").write_bytes(json.dumps(state).encode().ljust(STATE_PAGE))
    transfer = make(served, tmp_path)
    assert transfer.run() == hashlib.sha256(data).hexdigest()
    assert hub.bytes_sent(served.name) == len(data) - half


def test_proxy_settings_send_the_download_through_the_proxy(hub, tmp_path, monkeypatch):
    data, served = serve(hub, "proxied.gguf", 3 * MiB)
    url = "http://files.example" + urlsplit(served.url).path  # a name only the proxy knows
    with forward_proxy(hub.url, monkeypatch) as seen:
        assert make(served, tmp_path, url=url).run() == hashlib.sha256(data).hexdigest()
    assert seen and all(asked == url for asked in seen)


def test_a_guarded_transfer_connects_only_to_addresses_the_check_approves(hub, tmp_path):
    _, served = serve(hub, "pinned.gguf", 2 * MiB)
    asked: list[str] = []
    transfer = make(served, tmp_path, url_guard=asked.append)  # the URL check lets everything pass …
    with pytest.raises(InvalidInput, match="loopback or private"):
        transfer.run()  # … the connection's own check of the address it opens does not
    assert asked and hub.requests == []


def test_a_trusted_host_is_neither_checked_nor_pinned(hub, tmp_path):
    data, served = serve(hub, "trusted.gguf", 2 * MiB)

    def never(url: str) -> None:
        raise AssertionError(f"checked {url}")

    transfer = make(served, tmp_path, url_guard=never, trusted_hosts=["127.0.0.1"])
    assert transfer.run() == hashlib.sha256(data).hexdigest()


def test_abort_interrupts_a_read_that_waits_on_a_silent_server(hub, tmp_path):
    _, served = serve(hub, "silent.gguf", 4 * MiB)
    stall_at = 1 * MiB + MiB // 2  # within a segment, so one response stops there
    hub.faults[served.name.rsplit("/", 1)[-1]] = Fault(stall_at=stall_at, stall_seconds=120)
    transfer = make(served, tmp_path, stall=120)
    outcome: list = []

    def run() -> None:
        try:
            transfer.run()
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            outcome.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    deadline = time.monotonic() + 30
    while transfer.downloaded < served.size - (2 * MiB - stall_at):  # all but the rest of [1 MiB, 2 MiB)
        assert time.monotonic() < deadline, "the transfer never reached the stall"
        time.sleep(0.02)
    transfer.abort()  # one connection now waits on the silent server (for up to two minutes)
    runner.join(30)
    assert not runner.is_alive() and len(outcome) == 1 and isinstance(outcome[0], TransferCancelled)
