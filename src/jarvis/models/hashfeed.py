"""Bytes downloaded at the hashing frontier, received straight into memory the hasher reads.

A transfer's hasher follows the file's contiguous completed prefix. Reading that prefix back
from the page cache is one more copy of every byte; instead, the connection whose bytes extend
the run the hasher is about to reach receives them into this ring (`space`), writes them to the
file from there and hands them over (`commit`, once the file holds every one of them, so the
digest still vouches for the file); the hasher hashes them in place (`peek`, then
`consumed`). A ring allocated once, because a fresh buffer per read made the allocator map and
unmap memory, faulting in every page of it again.

The ring holds at most `size` bytes: the connection feeding it waits for the hasher when it is
that far ahead (on a fast link the hasher is the slower of the two, and waiting costs nothing,
while reading back later costs a copy). Bytes anywhere else (other connections' segments, a
resumed prefix) are not taken: the hasher reads those from the file (`skip_to`), and the run
starts again where it has caught up.

One writer at a time: `space` lends the free part of the ring to the calling thread until its
`commit` or `abandon`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

MIN_SPACE = 64 << 10  # a writer waits for at least this much room, rather than read in slivers
WAIT_STEP = 0.25  # seconds between looks at `give_up` while waiting for the hasher


class HashFeed:
    def __init__(self, size: int) -> None:
        self.size = size
        self._min_space = max(1, min(MIN_SPACE, size // 4))
        self._ring: memoryview | None = None  # allocated when first written
        self._start = 0  # where the hasher is: the file offset of the first held byte
        self._end = 0  # the file offset after the last held byte
        self._writer: int | None = None  # the thread the free part is lent to
        self._closed = False
        self._changed = threading.Condition()

    @property
    def held(self) -> int:
        return self._end - self._start

    # --- the writer --------------------------------------------------------------------------

    def space(self, offset: int, give_up: Callable[[], bool] = lambda: False) -> memoryview | None:
        """Where to receive the bytes for file offset `offset`, when they extend the held run;
        None when they do not (receive them elsewhere). Blocks while the ring is full, until the
        hasher takes some, `give_up()` or `close()`."""
        me = threading.get_ident()
        with self._changed:
            if self._writer == me:  # what it was lent before went unused
                self._writer = None
            while True:
                if self._closed or offset != self._end or self._writer is not None:
                    return None
                free = self.size - self.held
                if free >= self._min_space:
                    break
                if give_up():
                    return None
                self._changed.wait(WAIT_STEP)
            if self._ring is None:
                self._ring = memoryview(bytearray(self.size))
            self._writer = me
            at = offset % self.size
            return self._ring[at : at + min(free, self.size - at)]

    def commit(self, offset: int, count: int) -> None:
        """`count` bytes for `offset` were received into what `space` lent and are in the file.
        Does nothing when nothing was lent to this thread."""
        with self._changed:
            if self._writer != threading.get_ident():
                return
            self._writer = None
            if not self._closed and offset == self._end:
                self._end += count
                self._changed.notify_all()

    def abandon(self) -> None:
        """Give back what `space` lent to this thread, unused (a failed read)."""
        with self._changed:
            if self._writer == threading.get_ident():
                self._writer = None

    # --- the hasher --------------------------------------------------------------------------

    def peek(self, offset: int, end: int) -> memoryview | None:
        """Held bytes from `offset` (where the hasher is) up to at most `end`, left in place until
        `consumed`; None when none are held there."""
        with self._changed:
            if offset != self._start or not self.held or end <= offset:
                return None
            at = offset % self.size
            assert self._ring is not None  # bytes are held, so it was written
            return self._ring[at : at + min(self.held, end - offset, self.size - at)]

    def consumed(self, count: int) -> None:
        """The hasher is done with `count` bytes from `peek`: their room is free again."""
        with self._changed:
            self._start += count
            self._changed.notify_all()

    def skip_to(self, offset: int) -> None:
        """The hasher read up to `offset` from the file: what is held below it is dropped, and
        the run continues from there."""
        with self._changed:
            if offset > self._start:
                self._start = offset
                self._end = max(self._end, offset)
                self._changed.notify_all()

    def close(self) -> None:
        """The hasher is gone: take nothing more, and wake whoever waits."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
