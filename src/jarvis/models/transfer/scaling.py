"""How many connections a transfer runs: a few at first, more while the total keeps growing.

A server or CDN that caps each connection (25 MB/s a stream is common) is only fast with many
connections; a link that one connection fills gains nothing from more of them, and each one
then costs CPU, memory and a share of the other side's patience. So the count is found by
measuring: double it while doubling raises the total rate by at least `gain`, and when a
doubling does not pay, go back to the count before it and keep that for the rest of the file.
"""

from __future__ import annotations

INITIAL_CONNECTIONS = 2
WINDOW = 0.5  # seconds each count's rate is measured over
SETTLE = 0.25  # seconds new connections get to connect and start sending before that
GAIN = 1.25  # the growth of the total rate that makes a doubling worth keeping


class ConnectionScaler:
    """Feed `observe(now, received)` the bytes received so far, as often as convenient; it
    returns how many connections should run now (`target`). `settled` once it stopped trying."""

    def __init__(self, initial: int, most: int, *, window: float = WINDOW, settle: float = SETTLE, gain: float = GAIN) -> None:
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
