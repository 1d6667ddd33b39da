"""How many connections a transfer runs: a few at first, more while the total keeps growing
(`ConnectionScaler` decides, `WorkerPool` runs the connections' threads accordingly).

A server or CDN that caps each connection (25 MB/s a stream is common) is only fast with many
connections; a link that one connection fills gains nothing from more of them, and each one
then costs CPU, memory and a share of the other side's patience. So the count is found by
measuring: double it while doubling raises the total rate by at least `gain`, and when a
doubling does not pay, go back to the count before it and keep that for the rest of the file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

INITIAL_CONNECTIONS = 2
WINDOW = 0.4  # seconds each count's rate is measured over
SETTLE = 0.15  # seconds new connections get to connect and start sending before that
GAIN = 1.25  # the growth of the total rate that makes a doubling worth keeping
POOL_TICK = 0.05  # seconds between the pool's looks at the rate


class ConnectionScaler:
    """Feed `observe(now, received)` the bytes received so far, as often as convenient; it
    returns how many connections should run now (`target`). `settled` once it stopped trying."""

    def __init__(
        self, initial: int, most: int, *, window: float = WINDOW, settle: float = SETTLE, gain: float = GAIN
    ) -> None:
        self.most = max(1, most)
        self.target = max(1, min(initial, self.most))
        self.window, self.settle, self.gain = window, settle, gain
        self.settled = self.target >= self.most  # nothing to try
        self.rates: list[tuple[int, float]] = []  # (count, bytes per second) as measured, for the log
        self._changed_at: float | None = None
        self._mark: tuple[float, int] | None = None
        self._before: tuple[int, float] | None = None  # the count before the last doubling, and its rate

    def observe(self, now: float, received: int) -> int:
        if self.settled:
            return self.target
        if self._mark is None:
            if self._changed_at is None:
                self._changed_at = now
            if now - self._changed_at >= self.settle:
                self._mark = (now, received)
            return self.target
        start, start_bytes = self._mark
        if now - start < self.window:
            return self.target
        if received == start_bytes:  # nothing came (a stall, a retry): no rate to judge by
            self._mark = (now, received)
            return self.target
        rate = (received - start_bytes) / (now - start)
        self.rates.append((self.target, rate))
        if self._before is not None and rate < self._before[1] * self.gain:
            self.target = self._before[0]  # the last doubling did not pay
            self.settled = True
        elif self.target >= self.most:
            self.settled = True
        else:
            self._before = (self.target, rate)
            self.target = min(self.most, self.target * 2)
            self._mark, self._changed_at = None, now
        return self.target


class WorkerPool:
    """Runs `work(retire)` in threads, as many at a time as `scaler` finds worth it, until the
    work is done or halted; a worker whose `retire` event is set hands back what it holds and
    ends. `received()` is the bytes so far, `halted()` whether to stop (a failure, a cancel,
    a fallback), `finished()` whether nothing is left to fetch."""

    def __init__(
        self,
        work: Callable[[threading.Event], None],
        scaler: ConnectionScaler,
        *,
        received: Callable[[], int],
        halted: Callable[[], bool],
        finished: Callable[[], bool],
        label: str,
    ) -> None:
        self.work, self.scaler, self.label = work, scaler, label
        self.received, self.halted, self.finished = received, halted, finished
        self.peak = 0  # the most workers that ran at once
        self._workers: list[tuple[threading.Thread, threading.Event]] = []

    def run(self) -> None:
        self._start(self.scaler.target)
        settled = self.scaler.settled
        while True:
            alive = [(worker, retire) for worker, retire in self._workers if worker.is_alive()]
            if not alive:
                if self.halted() or self.finished():
                    return
                # the last ones ended (nothing to take) while a retiring one still held a segment
                self._start(1)
                continue
            serving = [pair for pair in alive if not pair[1].is_set()]
            self.peak = max(self.peak, len(serving))
            alive[0][0].join(POOL_TICK)
            if settled or self.halted():
                continue
            wanted = self.scaler.observe(time.monotonic(), self.received())
            if wanted > len(serving) and not self.finished():
                self._start(wanted - len(serving))
            for _worker, retire in serving[wanted:]:  # the newest go first
                retire.set()
            if self.scaler.settled:
                settled = True
                rates = ", ".join(f"{count}: {rate / 1e6:.0f} MB/s" for count, rate in self.scaler.rates)
                log.info("%s: %d connections (measured %s)", self.label, self.scaler.target, rates or "nothing")

    def _start(self, count: int) -> None:
        for _ in range(count):
            retire = threading.Event()
            worker = threading.Thread(
                target=self.work, args=(retire,), name=f"transfer-{len(self._workers)}", daemon=True
            )
            self._workers.append((worker, retire))
            worker.start()
