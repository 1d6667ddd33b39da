"""Prometheus metrics, with the standard client library, in a registry of the service's own
(two apps in one process, as in the tests, never collide in the library's global one).

Counted as it happens: HTTP requests per route template (never raw URLs: their ids would
make a series per session), finished answers per model and engine (first-token time,
tokens/s, tokens), bytes downloaded, event fan-out lag. Read at scrape time: the engine's
slots and queue, running downloads, the database pool, the event transport.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jarvis.events import EventBus
from jarvis.models.downloads.job import ACTIVE

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "<unmatched>"  # requests for no route: one series, whatever they asked for

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
FIRST_TOKEN_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
RATE_BUCKETS = (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 500, 1000)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "jarvis_http_requests",
            "HTTP requests and WebSocket connections by route template, method and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "jarvis_http_request_duration_seconds",
            "Time to the end of the response (streams: to their end)",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.answers = Counter(
            "jarvis_chat_answers",
            "Answers generated, by model, engine and final status",
            ["model", "engine", "status"],
            registry=r,
        )
        self.first_token = Histogram(
            "jarvis_chat_first_token_seconds",
            "From taking up a request to its first token",
            ["model", "engine"],
            buckets=FIRST_TOKEN_BUCKETS,
            registry=r,
        )
        self.token_rate = Histogram(
            "jarvis_chat_tokens_per_second",
            "Generation speed of one answer after its first token",
            ["model", "engine"],
            buckets=RATE_BUCKETS,
            registry=r,
        )
        self.completion_tokens = Counter(
            "jarvis_chat_completion_tokens",
            "Tokens generated",
            ["model", "engine"],
            registry=r,
        )
        self.download_bytes = Counter(
            "jarvis_download_bytes",
            "Bytes downloaded by this replica's jobs",
            ["model"],
            registry=r,
        )
        self.event_lag = Histogram(
            "jarvis_event_fanout_lag_seconds",
            "From publishing an event on one replica to its delivery on this one",
            ["backend"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self._downloaded: dict[str, int] = {}  # job id -> bytes counted so far
        self._watcher: asyncio.Task | None = None

    # --- fed by the service ------------------------------------------------------------------

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_answer(
        self,
        *,
        model: str,
        engine: str,
        status: str,
        ttft_ms: float | None,
        duration_ms: float | None,
        completion_tokens: int | None,
    ) -> None:
        """One finished answer, as the chat service stored it."""
        self.answers.labels(model, engine, status).inc()
        tokens = completion_tokens or 0
        if tokens:
            self.completion_tokens.labels(model, engine).inc(tokens)
        if ttft_ms is not None:
            self.first_token.labels(model, engine).observe(ttft_ms / 1000)
            if duration_ms is not None and tokens >= 2 and duration_ms > ttft_ms:
                self.token_rate.labels(model, engine).observe((tokens - 1) / ((duration_ms - ttft_ms) / 1000))

    def observe_lag(self, backend: str, seconds: float) -> None:
        self.event_lag.labels(backend).observe(seconds)

    def watch_downloads(self, bus: EventBus) -> None:
        """Count downloaded bytes from this replica's progress events."""
        self._watcher = asyncio.create_task(self._count_downloads(bus), name="metrics-downloads")

    async def _count_downloads(self, bus: EventBus) -> None:
        async with bus.subscribe() as queue:
            while True:
                event = await queue.get()
                if event.type != "download.progress" or event.origin not in (None, bus.replica):
                    continue
                job = str(event.data.get("job_id") or event.data.get("model"))
                now = int(event.data.get("downloaded_bytes") or 0)
                before = self._downloaded.get(job, 0)
                if now > before:
                    self.download_bytes.labels(str(event.data.get("model"))).inc(now - before)
                    self._downloaded[job] = now
                if event.data.get("status") not in ACTIVE:
                    self._downloaded.pop(job, None)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)

    def attach(self, services: Any) -> None:
        """Read the engine, downloads, database pool and event transport at scrape time."""
        self.registry.register(_ServiceCollector(services))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ServiceCollector(Collector):
    def __init__(self, services: Any) -> None:
        self.services = services

    def describe(self) -> list[Metric]:
        return []  # collected at scrape time only

    def collect(self) -> Iterator[Metric]:
        for collect in (self._slots, self._downloads, self._pool, self._events):
            try:
                yield from collect()
            except Exception:  # a metric that cannot be read must not fail the scrape
                log.exception("metrics: %s failed", collect.__name__)

    def _slots(self) -> Iterator[Metric]:
        local = self.services.engines.local
        slots = local.slots() or {}
        model = local.loaded.name if local.loaded else ""
        for name, key, text in (
            ("jarvis_engine_slots", "total", "Slots of the loaded model (answers generated at once)"),
            ("jarvis_engine_slots_busy", "busy", "Slots generating an answer now"),
            ("jarvis_engine_queue_length", "queued", "Answers waiting for a free slot"),
        ):
            gauge = GaugeMetricFamily(name, text, labels=["engine", "model"])
            gauge.add_metric([local.name, model], float(slots.get(key) or 0))
            yield gauge

    def _downloads(self) -> Iterator[Metric]:
        running = GaugeMetricFamily("jarvis_downloads_active", "Downloads queued or running on this replica")
        speed = GaugeMetricFamily("jarvis_download_speed_bytes_per_second", "Current speed", labels=["model"])
        done = GaugeMetricFamily("jarvis_download_progress_bytes", "Bytes of the file so far", labels=["model"])
        size = GaugeMetricFamily("jarvis_download_size_bytes", "Size of the file", labels=["model"])
        active = 0
        for job in self.services.downloads.snapshots():
            if job.get("status") not in ACTIVE:
                continue
            active += 1
            model = str(job.get("model"))
            speed.add_metric([model], float(job.get("speed_mbps") or 0) * 1e6)
            done.add_metric([model], float(job.get("downloaded_bytes") or 0))
            size.add_metric([model], float(job.get("total_bytes") or 0))
        running.add_metric([], active)
        yield from (running, speed, done, size)

    def _pool(self) -> Iterator[Metric]:
        pool = self.services.db.engine.pool
        for name, method, text in (
            ("jarvis_db_pool_size", "size", "Connections the pool keeps"),
            ("jarvis_db_pool_checked_out", "checkedout", "Connections in use"),
            ("jarvis_db_pool_overflow", "overflow", "Connections beyond the pool size now open"),
        ):
            if hasattr(pool, method):
                gauge = GaugeMetricFamily(name, text)
                gauge.add_metric([], float(getattr(pool, method)()))
                yield gauge

    def _events(self) -> Iterator[Metric]:
        bus = self.services.bus
        status = bus.status()
        connected = GaugeMetricFamily(
            "jarvis_events_connected", "Whether events reach the other replicas (1) or not (0)", labels=["backend"]
        )
        connected.add_metric([status["backend"]], 1.0 if status["connected"] else 0.0)
        yield connected
        relay = bus.transport
        if relay is None:
            return
        for name, attribute, text in (
            ("jarvis_events_sent", "sent", "Events sent to the other replicas"),
            ("jarvis_events_received", "received", "Events received from the other replicas"),
            ("jarvis_events_dropped", "dropped", "Events that could not be sent"),
            ("jarvis_events_reconnects", "reconnects", "Times the event connection was opened again"),
        ):
            counter = CounterMetricFamily(name, text, labels=["backend"])
            counter.add_metric([relay.backend], float(getattr(relay, attribute, 0)))
            yield counter
