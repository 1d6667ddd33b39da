"""A file's sha256, computed while it downloads: a thread follows the contiguous completed
prefix, hashing the bytes that extend it from memory as they arrive (models/hashfeed.py) and
reading the rest (other connections' segments, a resumed prefix) back from the page cache,
so verification costs almost nothing once the last byte is in."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable

from jarvis.models.hashfeed import HashFeed

HASH_BLOCK = 8 << 20


class PrefixHasher:
    """`run()` (in a thread of its own) hashes the file behind `fd` up to `contiguous()`, as
    that grows, until `finished()` and it has caught up. Both are called holding `progressed`,
    which is notified when either changes."""

    def __init__(
        self,
        fd: int,
        feed: HashFeed,
        progressed: threading.Condition,
        *,
        contiguous: Callable[[], int],
        finished: Callable[[], bool],
    ) -> None:
        self.fd, self.feed, self.progressed = fd, feed, progressed
        self.contiguous, self.finished = contiguous, finished
        self.sha = hashlib.sha256()
        self.hashed = 0

    def run(self) -> None:
        # reused: a fresh 8 MiB bytes per read had the allocator map it anew, faulting in all its pages
        buffer = memoryview(bytearray(HASH_BLOCK))
        try:
            while True:
                with self.progressed:
                    while self.contiguous() <= self.hashed and not self.finished():
                        self.progressed.wait(0.5)
                    target = self.contiguous()
                    finished = self.finished()
                while self.hashed < target:
                    block = self.feed.peek(self.hashed, target)
                    if block is not None:
                        self.sha.update(block)
                        self.hashed += len(block)
                        self.feed.consumed(len(block))
                        continue
                    count = _read_at(self.fd, buffer[: target - self.hashed], self.hashed)  # not in memory
                    if not count:
                        break
                    self.sha.update(buffer[:count])
                    self.hashed += count
                    self.feed.skip_to(self.hashed)
                with self.progressed:
                    if finished and self.hashed >= self.contiguous():
                        return
        finally:
            self.feed.close()  # a connection waiting for the hasher must not wait for one that is gone


def _read_at(fd: int, view: memoryview, offset: int) -> int:
    if hasattr(os, "preadv"):  # into `view`, no new buffer (macOS has it from 11 on)
        return os.preadv(fd, [view], offset)
    data = os.pread(fd, len(view), offset)
    view[: len(data)] = data
    return len(data)
