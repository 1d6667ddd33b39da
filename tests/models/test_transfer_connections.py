"""How many connections a transfer runs: the scaler's decisions on given rates, and a real
transfer against a hub that caps each connection (it opens more, the file arrives intact), or
that crawls on one connection (the others take over the rest of its segment)."""

from __future__ import annotations

import hashlib

import pytest

from jarvis.models.plan import RemoteFile
from jarvis.models.transfer import Transfer, TransferOptions
from jarvis.models.transfer.scaling import ConnectionScaler
from tests.support.gguf_files import gguf_bytes
from tests.support.hub import Fault

MiB = 1 << 20


def settle(scaler: ConnectionScaler, rate_of, *, seconds: float = 20.0, step: float = 0.05) -> ConnectionScaler:
    """Drive the scaler with the total rate `rate_of(connections)` (bytes per second)."""
    now, received = 0.0, 0
    while now < seconds and not scaler.settled:
        count = scaler.observe(now, received)
        received += int(rate_of(count) * step)
        now += step
    return scaler


def test_a_cap_per_connection_gets_every_connection_allowed():
    scaler = settle(ConnectionScaler(2, 16), lambda n: n * 25e6)
    assert scaler.settled and scaler.target == 16
    assert [count for count, _rate in scaler.rates] == [2, 4, 8, 16]


def test_a_link_one_connection_fills_keeps_the_initial_few():
    scaler = settle(ConnectionScaler(2, 16), lambda n: 550e6)
    assert scaler.settled and scaler.target == 2  # it tried 4, which did not pay, and went back


def test_the_count_stops_where_the_total_stops_growing():
    scaler = settle(ConnectionScaler(2, 16), lambda n: min(n, 8) * 25e6)
    assert scaler.settled and scaler.target == 8


@pytest.mark.parametrize("most", [1, 3])
def test_the_setting_is_the_upper_bound(most):
    scaler = settle(ConnectionScaler(2, most), lambda n: n * 25e6)
    assert scaler.target == most


def test_a_stall_is_no_verdict():
    stalled_until = 3.0
    clock = {"now": 0.0}
    scaler = ConnectionScaler(2, 16)
    received = 0
    while clock["now"] < 20 and not scaler.settled:
        count = scaler.observe(clock["now"], received)
        received += 0 if clock["now"] < stalled_until else int(count * 25e6 * 0.05)
        clock["now"] += 0.05
    assert scaler.target == 16


def serve(hub, name: str, size: int):
    data = gguf_bytes(payload=size, seed=len(name))
    return data, hub.add_file(f"/files/{name}", data)


def transfer(served, tmp_path, **options) -> Transfer:
    remote = RemoteFile(file=served.name.rsplit("/", 1)[-1], url=served.url, size=served.size)
    settings = {"connections": 16, "min_segment": 1 * MiB, "backoff_base": 0.01, "stall_timeout": 20, **options}
    return Transfer(remote, tmp_path / "x.partial", options=TransferOptions(**settings))


def test_a_server_capping_each_connection_gets_more_connections(hub, tmp_path):
    data, served = serve(hub, "capped.gguf", 24 * MiB)
    hub.faults[served.name] = Fault(throttle_bps=2 * MiB)  # every response, as a CDN throttles each stream
    job = transfer(served, tmp_path)
    assert job.run() == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "x.partial").read_bytes() == data
    assert job.peak_connections > job.options.initial_connections
    connections = {r.client for r in hub.requests if r.method == "GET" and r.path == served.name}
    assert len(connections) > job.options.initial_connections
    assert hub.bytes_sent(served.name) == len(data)  # more connections, not more bytes


def test_the_rest_of_a_crawling_connections_segment_is_taken_over(hub, tmp_path):
    data, served = serve(hub, "crawl.gguf", 8 * MiB)
    hub.faults[served.name] = Fault(throttle_bps=128 * 1024, times=1)  # the first request crawls
    job = transfer(served, tmp_path, connections=2, min_split=128 * 1024)
    assert job.run() == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "x.partial").read_bytes() == data
    starts = [int(r.range.split("=")[1].split("-")[0]) for r in hub.requests if r.method == "GET" and r.range]
    assert any(start % MiB for start in starts), starts  # a request began inside a planned 1 MiB segment
    assert hub.bytes_sent(served.name) <= len(data) + 2 * MiB  # the crawler's cut-off reads at most
