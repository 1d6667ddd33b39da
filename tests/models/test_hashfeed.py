"""The ring that hands bytes at the hashing frontier to the hasher without reading them back:
what it takes, what it refuses, waiting when full, and bytes that come out exactly as they
went in, whichever way writer and hasher interleave."""

from __future__ import annotations

import hashlib
import random
import threading

from jarvis.models.hashfeed import HashFeed


def put(feed: HashFeed, offset: int, data: bytes) -> bool:
    """What a connection does: receive into the lent room, then commit; False when none was lent."""
    view = feed.space(offset)
    if view is None:
        return False
    view[: len(data)] = data
    feed.commit(offset, len(data))
    return True


def take_all(feed: HashFeed, offset: int, end: int) -> bytes:
    out = b""
    while (block := feed.peek(offset + len(out), end)) is not None:
        out += bytes(block)
        feed.consumed(len(block))
    return out


def test_bytes_that_extend_the_run_are_held_until_hashed():
    feed = HashFeed(1 << 20)
    assert put(feed, 0, b"abc") and put(feed, 3, b"defg")
    assert feed.held == 7
    assert take_all(feed, 0, 7) == b"abcdefg"
    assert feed.held == 0


def test_bytes_anywhere_else_are_not_taken():
    feed = HashFeed(1 << 20)
    assert feed.space(100) is None  # another segment: the hasher reads it from the file
    assert put(feed, 0, b"abc")
    assert feed.space(2) is None and feed.space(4) is None  # overlapping, or leaving a gap
    assert feed.peek(1, 10) is None  # the hasher is not where the run starts


def test_the_hasher_never_gets_past_what_it_asks_for():
    feed = HashFeed(1 << 20)
    put(feed, 0, b"0123456789")
    assert bytes(feed.peek(0, 4)) == b"0123"  # bytes held but not yet counted as done
    feed.consumed(4)
    assert feed.peek(4, 4) is None
    assert take_all(feed, 4, 10) == b"456789"


def test_reading_back_from_the_file_restarts_the_run_where_the_hasher_is():
    feed = HashFeed(1 << 20)
    put(feed, 0, b"abcd")
    feed.skip_to(10)  # the hasher read up to 10 from the file: what is held is behind it
    assert feed.held == 0 and feed.peek(0, 20) is None
    assert feed.space(4) is None
    assert put(feed, 10, b"klm")
    assert take_all(feed, 10, 20) == b"klm"


def test_reading_back_part_of_the_run_keeps_the_rest():
    feed = HashFeed(1 << 20)
    put(feed, 0, b"abcdef")
    feed.skip_to(2)
    assert take_all(feed, 2, 6) == b"cdef"


def test_the_room_wraps_around_the_ring():
    feed = HashFeed(10)
    put(feed, 0, b"0123456")
    assert take_all(feed, 0, 7) == b"0123456"
    view = feed.space(7)
    assert len(view) == 3  # up to the end of the ring; the rest comes next time
    view[:] = b"789"
    feed.commit(7, 3)
    assert put(feed, 10, b"abcd")
    assert take_all(feed, 7, 14) == b"789abcd"


def test_a_full_ring_makes_the_writer_wait_for_the_hasher():
    feed = HashFeed(8)
    put(feed, 0, b"01234567")
    assert feed.space(8, give_up=lambda: True) is None  # full: no room, and it gave up waiting
    lent: list = []
    writer = threading.Thread(target=lambda: lent.append(feed.space(8)))
    writer.start()
    assert take_all(feed, 0, 8) == b"01234567"  # the hasher makes room
    writer.join(30)
    assert not writer.is_alive() and lent[0] is not None and len(lent[0]) == 8


def test_closing_wakes_a_waiting_writer_and_refuses_the_rest():
    feed = HashFeed(4)
    put(feed, 0, b"abcd")
    lent: list = []
    writer = threading.Thread(target=lambda: lent.append(feed.space(4)))
    writer.start()
    feed.close()  # the hasher is gone
    writer.join(30)
    assert not writer.is_alive() and lent == [None]
    assert feed.space(4) is None


def test_one_writer_at_a_time():
    feed = HashFeed(1 << 20)
    assert feed.space(0) is not None
    other: list = []
    thread = threading.Thread(target=lambda: other.append(feed.space(0)))
    thread.start()
    thread.join(30)
    assert other == [None]  # lent to this thread until it commits or gives it back
    feed.abandon()
    thread = threading.Thread(target=lambda: other.append(feed.space(0)))
    thread.start()
    thread.join(30)
    assert other[-1] is not None


def test_a_commit_without_room_lent_does_nothing():
    feed = HashFeed(1 << 20)
    feed.commit(0, 5)  # received into the connection's own buffer
    assert feed.held == 0 and feed.space(0) is not None


def test_writer_and_hasher_together_hash_every_byte_once_in_order():
    data = random.Random(7).randbytes(3 << 20)
    file = bytearray(len(data))
    feed = HashFeed(64 << 10)
    done = 0  # what the writer has written and counted, as a transfer's contiguous prefix
    progressed = threading.Condition()

    def writer() -> None:
        nonlocal done
        rng = random.Random(8)
        position = 0
        while position < len(data):
            count = rng.choice([1, 100, 4096, 50_000, 200_000])
            view = feed.space(position) if rng.random() < 0.9 else None  # sometimes not lent: own buffer
            if view is None:
                count = min(count, len(data) - position)
                file[position : position + count] = data[position : position + count]
            else:
                count = min(count, len(view), len(data) - position)
                view[:count] = data[position : position + count]
                file[position : position + count] = view[:count]
            feed.commit(position, count)
            position += count
            with progressed:
                done = position
                progressed.notify_all()

    sha, hashed = hashlib.sha256(), 0
    thread = threading.Thread(target=writer)
    thread.start()
    while hashed < len(data):
        with progressed:
            while done <= hashed:
                assert progressed.wait(30), "the writer stopped"
            target = done
        while hashed < target:
            block = feed.peek(hashed, target)
            if block is not None:
                sha.update(block)
                hashed += len(block)
                feed.consumed(len(block))
            else:  # not held: read it back from the "file"
                end = min(target, hashed + 30_000)
                sha.update(file[hashed:end])
                hashed = end
                feed.skip_to(hashed)
    thread.join(30)
    assert sha.hexdigest() == hashlib.sha256(data).hexdigest()
