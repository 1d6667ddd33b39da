"""One download job: what it fetches, where it stands, and the progress snapshot clients see."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from jarvis.models.plan import Plan
from jarvis.models.transfer import Transfer

ACTIVE = ("queued", "downloading", "stalled", "retrying", "verifying")
SPEED_WINDOW = 3.0  # seconds of samples the speed is averaged over


@dataclass
class DownloadJob:
    id: str
    model_key: str
    quantization: str | None
    plan: Plan
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    status: str = "queued"
    error: str | None = None
    error_code: str | None = None
    reported_bytes: int = 0
    speed_bps: float = 0.0
    cancel: threading.Event = field(default_factory=threading.Event)
    keep_partial: bool = False  # a cancel that is a pause (`jarvis pull` interrupted)
    transfers: list[Transfer] = field(default_factory=list)
    done_bytes: int = 0  # files already complete
    task: asyncio.Task | None = None
    _samples: deque = field(default_factory=lambda: deque(maxlen=64))

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def total_bytes(self) -> int | None:
        total = self.plan.total_bytes
        if total is None and self.transfers and all(t.size for t in self.transfers):
            total = self.done_bytes + sum(t.size or 0 for t in self.transfers)
        return total

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def measure(self) -> None:
        """Bring bytes, speed and status up to date with the running transfers."""
        current = self.done_bytes + sum(t.downloaded for t in self.transfers)
        self.reported_bytes = max(self.reported_bytes, current)  # never backwards
        now = time.monotonic()
        self._samples.append((now, current))
        while self._samples and now - self._samples[0][0] > SPEED_WINDOW:
            self._samples.popleft()
        first_time, first_bytes = self._samples[0]
        self.speed_bps = (
            (current - first_bytes) / (now - first_time) if now > first_time and current > first_bytes else 0.0
        )
        phases = {t.status for t in self.transfers}
        if self.status in ("downloading", "stalled", "retrying"):
            self.status = next((p for p in ("stalled", "retrying") if p in phases), "downloading")
        if self.status == "stalled":
            self.speed_bps = 0.0  # nothing has come for seconds: an average over the window would be a frozen speed

    def snapshot(self) -> dict:
        total = self.total_bytes
        if self.status == "completed":
            percent = 100.0
        elif total:
            percent = min(99.9, round(self.reported_bytes * 100 / total, 1))
        else:
            percent = 0.0
        remaining = (total - self.reported_bytes) if total else None
        eta = round(remaining / self.speed_bps) if remaining is not None and self.speed_bps > 0 else None
        data = {
            "model": self.model_key,
            "name": self.name,
            "job_id": self.id,
            "quantization": self.plan.quantization,
            "percent": percent,
            "speed_mbps": round(self.speed_bps / 1e6, 2),
            "eta_seconds": 0 if self.status == "completed" else eta,
            "status": self.status,
            "downloaded_bytes": self.reported_bytes,
            "total_bytes": total,
        }
        if self.error:
            data["error"] = self.error
            data["error_code"] = self.error_code  # what failed, for clients to act on (retry, token, disk)
        return data


def new_job_id(name: str) -> str:
    return hashlib.sha256(f"{name}|{time.time_ns()}".encode()).hexdigest()[:16]
