"""A file's segments (the byte ranges connections fetch) and the state sidecar that records
how far each got, so that a restart resumes instead of starting over."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

STATE_PAGE = 4096  # a state up to this size is rewritten in place, as one page (see StateFile.save)


@dataclass
class Segment:
    start: int
    end: int | None  # exclusive; None while the size is unknown (one sequential stream)
    done: int = 0
    taken: bool = field(default=False, repr=False)
    taken_at: float = field(default=0.0, repr=False)  # when its connection took it (time.monotonic())
    done_when_taken: int = field(default=0, repr=False)

    def take(self, now: float) -> Segment:
        self.taken, self.taken_at, self.done_when_taken = True, now, self.done
        return self

    @property
    def complete(self) -> bool:
        return self.end is not None and self.start + self.done >= self.end

    @property
    def remaining(self) -> int:
        return 0 if self.end is None else max(0, self.end - self.start - self.done)


def plan_segments(
    size: int | None, *, ranged: bool, connections: int, min_segment: int, max_segment: int
) -> list[Segment]:
    """Cut a file into segments: about four per connection, within [min_segment, max_segment];
    one segment when the size is unknown or the server cannot serve ranges."""
    if not size or not ranged:
        return [Segment(0, size)]
    step = size // (connections * 4) or size
    step = max(min_segment, min(max_segment, step))
    return [Segment(start, min(start + step, size)) for start in range(0, size, step)]


def split(segments: list[Segment], *, now: float, at_least: int, eta: float) -> Segment | None:
    """Take over the second half of the remainder a connection will take longest to finish, if
    that is more than `eta` seconds at the rate it has fetched it so far and at least
    `2 * at_least` bytes (the list is changed in place; the new segment comes back taken).

    For a connection that crawls or hangs while the others are done: its bytes already in
    flight are fetched twice (the cut connection is closed), so a remainder that will arrive
    soon anyway is left alone. Call it holding the lock that guards the segments."""

    def seconds_left(segment: Segment) -> float:
        elapsed = now - segment.taken_at
        rate = (segment.done - segment.done_when_taken) / elapsed if elapsed > 0 else 0.0
        return segment.remaining / rate if rate > 0 else float("inf") if elapsed >= eta else 0.0

    busy = [s for s in segments if s.taken and not s.complete and s.end is not None and s.remaining >= 2 * at_least]
    victim = max(busy, key=seconds_left, default=None)
    if victim is None or seconds_left(victim) <= eta:
        return None
    middle = victim.start + victim.done + victim.remaining // 2
    taken = Segment(middle, victim.end).take(now)
    victim.end = middle  # its connection stops there (Transfer._fetch reads up to `end` as it is now)
    segments.insert(segments.index(victim) + 1, taken)
    return taken


class StateFile:
    """The JSON sidecar of a partial file: its URL, digest, size and segments."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._saved_sequence = 0
        self._fd: int | None = None  # open while the state is one page

    def load(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def save(self, state: dict, sequence: int | None = None) -> None:
        """Write the state; a snapshot older than one already written is skipped.

        A state that fits in one page is padded to a page (JSON allows trailing blanks) and
        from then on rewritten in place with one pwrite of that page, which a kill -9 cannot
        tear (the kernel checks for a fatal signal between the pages of a write, not within
        one). Writing a new file and renaming it over the old one, each time, stalled on the
        file system's journal while the data streamed in: it cost a third of the throughput.
        Bigger states (hundreds of segments) are still replaced whole."""
        with self._lock:
            if sequence is not None:
                if sequence <= self._saved_sequence:
                    return
                self._saved_sequence = sequence
            data = json.dumps(state).encode()
            if len(data) <= STATE_PAGE and self._fd is not None:
                os.pwrite(self._fd, data.ljust(STATE_PAGE), 0)
                return
            self._close()
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_bytes(data.ljust(STATE_PAGE))
            os.replace(tmp, self.path)
            if len(data) <= STATE_PAGE:
                self._fd = os.open(self.path, os.O_WRONLY)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
