"""Fetch one file with ranged connections, resumable across restarts.

The file is cut into segments (segments.py); worker threads take the next unfinished segment
and fetch it with a `Range` request, writing at its offset in a preallocated `.partial` file.
How many workers run is measured as the bytes arrive (scaling.py): a few at first, more while
the total keeps growing, up to `connections`. Segments are cut for the connections a transfer starts
with; when none is left to start, a connection takes over the second half of a remainder
another one would need seconds more for (one that crawls or hangs), or, once more
connections have proved to help, a quarter of a second more: added connections get work at
once, and the end of the file is shared out. Each segment's progress is saved to a
small JSON sidecar every couple of MiB (no fsync: the page cache holds data and state alike
through a `kill -9`), so a restart re-fetches at most that much per connection. The sha256 is
computed as the bytes arrive (hashing.py), so verification costs almost nothing at the end.

Servers that ignore, refuse or garble Range fall back to one sequential stream. A signed
CDN URL that expires mid-download is dropped and resolved again from the origin. Read
timeouts mark the transfer `stalled` and are retried with exponential backoff and jitter.

Threads rather than asyncio: blocking reads release the GIL, the per-chunk work is a
pwrite, and the event loop of the server never sees a byte of it. Bodies come through
models/http11.py (httpx's own transport re-buffers every byte in Python), unless proxy
settings apply, which only httpx's transport honours.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from jarvis.errors import (
    InsufficientStorage,
    JarvisError,
    UpstreamError,
    VerificationError,
)
from jarvis.models.hashfeed import HashFeed
from jarvis.models.pinning import file_client
from jarvis.models.plan import RemoteFile
from jarvis.models.transfer.hashing import PrefixHasher
from jarvis.models.transfer.responses import (
    RangeUnsupported,
    Retry,
    TransferCancelled,
    body_reader,
    check_response,
)
from jarvis.models.transfer.scaling import (
    INITIAL_CONNECTIONS,
    ConnectionScaler,
    WorkerPool,
)
from jarvis.models.transfer.segments import Segment, StateFile, plan_segments, split

log = logging.getLogger(__name__)

SAVE_EVERY = 2 << 20
HASH_AHEAD = 16 << 20  # bytes held in memory for the hasher, at most
READ_SIZE = 1 << 20  # the most one read takes off a connection into its own buffer
STALL_NOTICE = 5.0  # seconds without a byte before progress says `stalled` (at most half the stall timeout)


@dataclass
class TransferOptions:
    connections: int = 16  # the most ranged connections per file (scaling.py finds how many help)
    initial_connections: int = INITIAL_CONNECTIONS
    stall_timeout: float = 20.0
    connect_timeout: float = 10.0
    max_failures: int = 8  # consecutive failed attempts without a byte of progress
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    min_segment: int = 8 << 20
    max_segment: int = 256 << 20
    # A connection with nothing left to start takes over half of a remainder this big or more
    # that another connection would take longer than `split_eta` seconds to finish (one that
    # crawls), or `split_eta_scaled` once the transfer has found that more connections help
    # (each is capped): then the tail of the file is shared out too.
    min_split: int = 2 << 20
    split_eta: float = 2.0
    split_eta_scaled: float = 0.25


class _Retired(Exception):
    """The pool has one connection too many: this one hands its segment back and ends."""


class Transfer:
    """Fetch `remote` into `partial`; `run()` blocks (call it in a thread) and returns the sha256 hex."""

    def __init__(
        self,
        remote: RemoteFile,
        partial: Path,
        *,
        headers: dict | None = None,
        options: TransferOptions | None = None,
        cancel: threading.Event | None = None,
        expect_gguf: bool = True,
        url_guard: Callable[[str], None] | None = None,
        trusted_hosts: Iterable[str] = (),
    ) -> None:
        self.remote = remote
        self.partial = partial
        self.state_path = partial.with_name(partial.name + ".json")
        self.headers = headers or {}
        self.options = options or TransferOptions()
        self.cancel = cancel or threading.Event()
        self.expect_gguf = expect_gguf
        # Public-only fetching (None: anything goes, JARVIS_ALLOW_INSECURE_URLS). It checks every
        # URL (redirects, a CDN) but those on `trusted_hosts` (the operator's configured
        # registry) and raises to refuse one; connections then go only to the addresses the
        # check approved (models/pinning.py), so a DNS answer cannot change between the two.
        self.url_guard = url_guard
        self.trusted_hosts = {host.lower() for host in trusted_hosts}
        self.size: int | None = remote.size
        self.downloaded = 0
        self.phase = "downloading"
        self.ranged = True
        self.segments: list[Segment] = []
        self.peak_connections = 0  # the most connections that ran at once
        self._lock = threading.Lock()
        self._sequence = 0
        self._progressed = threading.Condition(self._lock)
        self._unsaved = 0
        self._cdn_url: str | None = None
        self._fatal: BaseException | None = None
        self._stop_workers = threading.Event()
        self._clients: set[httpx.Client] = set()
        self._fd: int | None = None
        self._state = StateFile(self.state_path)
        self._feed = HashFeed(HASH_AHEAD)
        self._hasher: PrefixHasher | None = None
        self._pool: WorkerPool | None = None
        self._finished = False
        self._last_data = time.monotonic()

    # --- public ----------------------------------------------------------------------

    @property
    def hashed(self) -> int:
        """Bytes of the file's prefix hashed so far."""
        return self._hasher.hashed if self._hasher is not None else 0

    @property
    def status(self) -> str:
        """What progress shows: the phase, but `stalled` as soon as no byte has come for a while,
        well before the read timeout gives up on the connection and retries it."""
        quiet = time.monotonic() - self._last_data
        if self.phase == "downloading" and quiet >= min(STALL_NOTICE, self.options.stall_timeout / 2):
            return "stalled"
        return self.phase

    def run(self) -> str:
        """Raises TransferCancelled, VerificationError, UpstreamError, UpstreamAuthError, NotFound, InsufficientStorage."""
        try:
            self._prepare()
            self._hasher = PrefixHasher(
                self._open_fd,
                self._feed,
                self._progressed,
                contiguous=self._contiguous,
                finished=lambda: self._finished,
            )
            hasher = threading.Thread(target=self._hasher.run, name="transfer-hash", daemon=True)
            hasher.start()
            try:
                self._run_pool(self.options.connections if self.ranged else 1)
                if self._fatal is None and not self._all_done() and not self.cancel.is_set():
                    self._fall_back_to_one_stream()  # Range did not work out
                    self._run_pool(1)
                if self._all_done():
                    self.phase = "verifying"  # the hasher may still be catching up: not a stall
            finally:
                with self._lock:
                    self._finished = True
                    self._progressed.notify_all()
                hasher.join()
            if self.cancel.is_set():
                raise TransferCancelled()
            if self._fatal is not None:
                raise self._fatal
            self._save_state()
            return self._verify()
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._state.close()

    def abort(self) -> None:
        """Cancel from another thread: blocked reads are interrupted at once."""
        self.cancel.set()
        for client in list(self._clients):
            try:
                client.close()
            except Exception:  # closing under a reading thread may complain; it still closes
                pass

    def discard(self) -> None:
        """Remove the partial data and its state."""
        self.partial.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)

    # --- setup -----------------------------------------------------------------------

    def _prepare(self) -> None:
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        if self._load_state():
            log.info("resuming %s at %d of %s bytes", self.remote.file, self.downloaded, self.size)
        else:
            if self.size is None:
                self._probe()
            # cut for the connections a transfer starts with: on a link they fill, few requests
            # and long runs for the hasher; connections added later take over halves (split)
            self.segments = plan_segments(
                self.size,
                ranged=self.ranged,
                connections=self.options.initial_connections,
                min_segment=self.options.min_segment,
                max_segment=self.options.max_segment,
            )
            fd = os.open(self.partial, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            if self.size:
                os.ftruncate(fd, self.size)
            os.close(fd)
            self._save_state()
        self._fd = os.open(self.partial, os.O_RDWR)

    def _probe(self) -> None:
        """Size and Range support of a URL with no published size (a HEAD; failures mean one stream)."""
        try:
            with self._client() as client:
                response = client.head(self.remote.url, headers=self._headers_for(self.remote.url))
        except httpx.HTTPError:
            return
        length = response.headers.get("content-length")
        if response.status_code == 200 and length and length.isdigit():
            self.size = int(length)
            self.ranged = response.headers.get("accept-ranges", "").lower() == "bytes"

    def _load_state(self) -> bool:
        state = self._state.load()
        if (
            not isinstance(state, dict)
            or state.get("url") != self.remote.url
            or state.get("digest") != self.remote.digest
            or not self.partial.exists()
            or (state.get("size") is not None and self.partial.stat().st_size != state["size"])
        ):
            return False
        self.size = state["size"]
        self.ranged = state["ranged"]
        self.segments = [Segment(start, end, done) for start, end, done in state["segments"]]
        if not self.ranged:  # a sequential stream cannot resume: start it again
            self.segments = [Segment(0, self.size)]
        self.downloaded = sum(s.done for s in self.segments)
        return True

    def _snapshot(self) -> dict:
        return {
            "url": self.remote.url,
            "digest": self.remote.digest,
            "size": self.size,
            "ranged": self.ranged,
            "segments": [[s.start, s.end, s.done] for s in self.segments],
        }

    def _save_state(self, state: dict | None = None, sequence: int | None = None) -> None:
        self._state.save(state or self._snapshot(), sequence)

    # --- workers -------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        timeout = httpx.Timeout(self.options.stall_timeout, connect=self.options.connect_timeout)
        return file_client(timeout, guard=self._guard if self.url_guard else None, exempt=self.trusted_hosts)

    def _guard(self, request: httpx.Request) -> None:
        # Called for every request, redirects included, before it is sent.
        if self.url_guard is None or request.url.host.lower() in self.trusted_hosts:
            return
        try:
            self.url_guard(str(request.url))
        except JarvisError as exc:
            raise UpstreamError(f"{self.remote.file}: refused to follow {request.url.host}: {exc.message}") from exc

    def _headers_for(self, url: str) -> dict:
        # Credentials go to the origin's host only, never to a CDN it redirects to.
        return self.headers if urlsplit(url).hostname == urlsplit(self.remote.url).hostname else {}

    def _run_pool(self, most: int) -> None:
        """Run workers until the segments are done (or a failure, a cancel, a fallback), as many
        at a time as the scaler finds worth it, up to `most`."""
        self._stop_workers.clear()
        self._pool = pool = WorkerPool(
            self._worker,
            ConnectionScaler(self.options.initial_connections, most),
            received=lambda: self.downloaded,
            halted=lambda: self._stop_workers.is_set() or self.cancel.is_set() or self._fatal is not None,
            finished=self._all_done,
            label=self.remote.file,
        )
        pool.run()
        self.peak_connections = max(self.peak_connections, pool.peak)

    def _take(self) -> Segment | None:
        now = time.monotonic()
        with self._lock:
            for segment in self.segments:
                if not segment.complete and not segment.taken:
                    return segment.take(now)
            if self.ranged and self.size is not None:
                scaled = self._pool is not None and self._pool.scaler.target > self.options.initial_connections
                eta = self.options.split_eta_scaled if scaled else self.options.split_eta
                return split(self.segments, now=now, at_least=self.options.min_split, eta=eta)
        return None

    def _worker(self, retire: threading.Event) -> None:
        failures = 0
        buffer = memoryview(bytearray(READ_SIZE))  # reused: see models/hashfeed.py on fresh buffers
        with self._client() as client:
            self._clients.add(client)
            try:
                while not self._stop_workers.is_set() and not retire.is_set():
                    if self.cancel.is_set():
                        return
                    segment = self._take()
                    if segment is None:
                        return
                    before = segment.done
                    try:
                        self._fetch(client, segment, buffer, retire)
                        failures = 0
                    except _Retired:
                        return
                    except Retry as retry:
                        failures = 0 if segment.done > before else failures + 1
                        if failures >= self.options.max_failures:
                            self._fail(
                                UpstreamError(f"download of {self.remote.file} failed {failures} times: {retry}")
                            )
                            return
                        self.phase = retry.phase
                        delay = retry.delay if retry.delay is not None else self._backoff(failures)
                        log.info("%s: %s; retrying in %.1fs", self.remote.file, retry, delay)
                        if self.cancel.wait(delay):
                            return
                    except RangeUnsupported as exc:
                        log.info("%s: %s; falling back to one stream", self.remote.file, exc)
                        self.ranged = False
                        self._stop_workers.set()
                    except TransferCancelled:
                        return
                    except OSError as exc:  # writing the partial file failed
                        if not self.cancel.is_set():
                            full = exc.errno == errno.ENOSPC
                            self._fail(
                                InsufficientStorage(f"the disk is full while writing {self.remote.file}")
                                if full
                                else exc
                            )
                        return
                    except BaseException as exc:
                        if not self.cancel.is_set():
                            self._fail(exc)
                        return
                    finally:
                        with self._lock:
                            segment.taken = False
            finally:
                self._clients.discard(client)

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._fatal is None:
                self._fatal = exc
        self._stop_workers.set()

    def _backoff(self, failures: int) -> float:
        ceiling = min(self.options.backoff_max, self.options.backoff_base * 2 ** (failures - 1))
        return random.uniform(ceiling / 2, ceiling)  # jitter: connections must not retry in lockstep

    def _fetch(self, client: httpx.Client, segment: Segment, buffer: memoryview, retire: threading.Event) -> None:
        if not self.ranged and segment.done:  # without Range a new attempt starts from the beginning
            with self._lock:
                self.downloaded -= segment.done
                segment.done = 0
        position = segment.start + segment.done
        url = self._cdn_url or self.remote.url
        headers = dict(self._headers_for(url))
        ranged_request = self.ranged and (position > 0 or segment.end != self.size or len(self.segments) > 1)
        if ranged_request:
            last = "" if segment.end is None else str(segment.end - 1)
            headers["Range"] = f"bytes={position}-{last}"
        try:
            with client.stream("GET", url, headers=headers) as response:
                try:
                    check_response(
                        response,
                        file=self.remote.file,
                        via_cdn=url != self.remote.url,
                        position=position,
                        segment=segment,
                        ranged=ranged_request,
                        size=self.size,
                    )
                except Retry as retry:
                    if retry.refresh:
                        self._cdn_url = None
                    raise
                if str(response.url) != self.remote.url:
                    self._cdn_url = str(response.url)
                read = body_reader(response)
                while True:
                    if self.cancel.is_set():
                        raise TransferCancelled()
                    if retire.is_set():
                        raise _Retired()
                    end = segment.end  # moves closer when another connection takes over the rest (segments.split)
                    if end is not None and position >= end:
                        break
                    # bytes the hasher is about to reach go straight into its memory
                    view = self._feed.space(position, lambda: self.cancel.is_set() or retire.is_set()) or buffer
                    if end is not None:
                        view = view[: end - position]
                    count = read(view)
                    if not count:
                        break
                    if segment.end is not None:  # the rest was taken over during the read: keep only ours
                        count = min(count, segment.end - position)
                    _write_all(self._open_fd, view[:count], position)
                    self._feed.commit(position, count)  # before the bytes count: the hasher may want them
                    position += count
                    self._advance(segment, count)
        except httpx.TimeoutException as exc:
            raise Retry(
                f"no data for {self.options.stall_timeout:.0f}s ({type(exc).__name__})", phase="stalled"
            ) from exc
        except httpx.TransportError as exc:
            if self.cancel.is_set():
                raise TransferCancelled() from exc
            if retire.is_set():
                raise _Retired() from exc
            raise Retry(f"connection failed ({type(exc).__name__})") from exc
        finally:
            self._feed.abandon()
        if segment.end is None:
            with self._lock:  # a stream of unknown length ended cleanly: now the size is known
                segment.end = position
                self.size = position
        elif position < segment.end:
            raise Retry(f"the connection ended {segment.end - position} bytes early")

    def _advance(self, segment: Segment, count: int) -> None:
        with self._lock:
            segment.done += count
            self.downloaded += count
            # bytes flow again: a stall or retry is over as soon as they do, not when the segment ends
            self.phase = "downloading"
            self._last_data = time.monotonic()
            self._unsaved += count
            snapshot = None
            if self._unsaved >= SAVE_EVERY:
                self._unsaved = 0
                self._sequence += 1
                snapshot, sequence = self._snapshot(), self._sequence
            self._progressed.notify_all()
        if snapshot is not None:  # written outside the lock: the other connections keep streaming
            self._save_state(snapshot, sequence)

    def _all_done(self) -> bool:
        return all(s.complete for s in self.segments)

    def _fall_back_to_one_stream(self) -> None:
        with self._lock:
            self.ranged = False
            self.segments = [Segment(0, self.size)]
            self.downloaded = 0
            self._save_state()

    # --- hashing and verification ----------------------------------------------------------

    def _contiguous(self) -> int:
        end = 0
        for segment in self.segments:
            if segment.start != end:
                break
            end = segment.start + segment.done
            if not segment.complete:
                break
        return end

    @property
    def _open_fd(self) -> int:
        if self._fd is None:
            raise RuntimeError("the partial file is not open")
        return self._fd

    def _verify(self) -> str:
        self.phase = "verifying"
        actual_size = os.fstat(self._open_fd).st_size
        if self.size is not None and (actual_size != self.size or self.hashed != self.size):
            self.discard()  # its state says "complete": kept, every later attempt would fail the same way
            raise VerificationError(f"{self.remote.file}: got {self.hashed} bytes, expected {self.size}")
        if self.expect_gguf and os.pread(self._open_fd, 4, 0) != b"GGUF":
            self.discard()
            raise VerificationError(f"{self.remote.file}: the server sent something that is not a GGUF file")
        assert self._hasher is not None  # made in run() before any worker starts
        digest = self._hasher.sha.hexdigest()
        if self.remote.digest and self.remote.digest.split("-", 1)[-1].split(":", 1)[-1] != digest:
            self.discard()
            raise VerificationError(
                f"{self.remote.file}: sha256 {digest} does not match the published {self.remote.digest}"
            )
        return digest


def _write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    # The hasher may take these bytes from memory, so the file must hold every one of them:
    # a short write cannot be left for the digest to catch.
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if not written:
            raise OSError(errno.EIO, "the partial file took no bytes")
        view, offset = view[written:], offset + written
