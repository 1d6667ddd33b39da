"""Download one file with several ranged connections, resumable across restarts.

The file is cut into segments; worker threads take the next unfinished segment and fetch
it with a `Range` request, writing at its offset in a preallocated `.partial` file. Each
segment's progress is saved to a small JSON sidecar every couple of MiB (no fsync: the
page cache holds data and state alike through a `kill -9`), so a restart re-fetches at
most that much per connection. A hasher thread follows the contiguous completed prefix, so
verification costs almost nothing at the end: the bytes that extend it come from memory as
they arrive (models/hashfeed.py), the rest (other connections' segments, a resumed prefix)
is read back from the page cache.

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
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from jarvis.errors import (
    InsufficientStorage,
    JarvisError,
    NotFound,
    UpstreamAuthError,
    UpstreamError,
    VerificationError,
)
from jarvis.models.hashfeed import HashFeed
from jarvis.models.http11 import READINTO, Http11Transport
from jarvis.models.pinning import PublicOnlyBackend, pinned_transport
from jarvis.models.plan import RemoteFile

log = logging.getLogger(__name__)

SAVE_EVERY = 2 << 20
STATE_PAGE = 4096  # a state up to this size is rewritten in place, as one page (see _save_state)
HASH_BLOCK = 8 << 20
HASH_AHEAD = 16 << 20  # bytes held in memory for the hasher, at most
READ_SIZE = 1 << 20  # the most one read takes off a connection
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_ERROR_TYPES = ("text/html", "application/json", "application/xml", "text/xml", "text/plain")
STALL_NOTICE = 5.0  # seconds without a byte before progress says `stalled` (at most half the stall timeout)


@dataclass
class TransferOptions:
    connections: int = 4
    stall_timeout: float = 20.0
    connect_timeout: float = 10.0
    max_failures: int = 8  # consecutive failed attempts without a byte of progress
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    min_segment: int = 8 << 20
    max_segment: int = 256 << 20


class TransferCancelled(Exception):
    pass


class _Retry(Exception):
    """A failed attempt worth trying again; `phase` is what progress shows meanwhile."""

    def __init__(self, message: str, *, phase: str = "retrying", delay: float | None = None) -> None:
        super().__init__(message)
        self.phase = phase
        self.delay = delay


class _RangeUnsupported(Exception):
    pass


@dataclass
class Segment:
    start: int
    end: int | None  # exclusive; None while the size is unknown (one sequential stream)
    done: int = 0
    taken: bool = field(default=False, repr=False)

    @property
    def complete(self) -> bool:
        return self.end is not None and self.start + self.done >= self.end


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
        self.hashed = 0
        self.phase = "downloading"
        self.ranged = True
        self.segments: list[Segment] = []
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._sequence = self._saved_sequence = 0
        self._progressed = threading.Condition(self._lock)
        self._unsaved = 0
        self._cdn_url: str | None = None
        self._fatal: BaseException | None = None
        self._stop_workers = threading.Event()
        self._clients: set[httpx.Client] = set()
        self._fd: int | None = None
        self._state_fd: int | None = None  # the state sidecar, open while it is one page
        self._feed = HashFeed(HASH_AHEAD)
        self._finished = False
        self._last_data = time.monotonic()

    # --- public ----------------------------------------------------------------------

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
            sha = hashlib.sha256()
            hasher = threading.Thread(target=self._hash_loop, args=(sha,), name="transfer-hash", daemon=True)
            hasher.start()
            try:
                self._run_workers(min(self.options.connections, len(self.segments)) if self.ranged else 1)
                if self._fatal is None and not self._all_done() and not self.cancel.is_set():
                    self._fall_back_to_one_stream()  # Range did not work out
                    self._run_workers(1)
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
            return self._verify(sha)
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            with self._save_lock:
                self._close_state()

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
            self._plan_segments()
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

    def _plan_segments(self) -> None:
        if not self.size or not self.ranged:
            self.segments = [Segment(0, self.size)]
            return
        step = self.size // (self.options.connections * 4) or self.size
        step = max(self.options.min_segment, min(self.options.max_segment, step))
        self.segments = [Segment(start, min(start + step, self.size)) for start in range(0, self.size, step)]

    def _load_state(self) -> bool:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return False
        if (
            state.get("url") != self.remote.url
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

    def _state(self) -> dict:
        return {
            "url": self.remote.url,
            "digest": self.remote.digest,
            "size": self.size,
            "ranged": self.ranged,
            "segments": [[s.start, s.end, s.done] for s in self.segments],
        }

    def _save_state(self, state: dict | None = None, sequence: int | None = None) -> None:
        """Write the state sidecar; a snapshot older than one already written is skipped.

        A state that fits in one page is padded to a page (JSON allows trailing blanks) and
        from then on rewritten in place with one pwrite of that page, which a kill -9 cannot
        tear (the kernel checks for a fatal signal between the pages of a write, not within
        one). Writing a new file and renaming it over the old one, each time, stalled on the
        file system's journal while the data streamed in: it cost a third of the throughput.
        Bigger states (hundreds of segments) are still replaced whole."""
        state = state or self._state()
        with self._save_lock:
            if sequence is not None:
                if sequence <= self._saved_sequence:
                    return
                self._saved_sequence = sequence
            data = json.dumps(state).encode()
            if len(data) <= STATE_PAGE and self._state_fd is not None:
                os.pwrite(self._state_fd, data.ljust(STATE_PAGE), 0)
                return
            self._close_state()
            tmp = self.state_path.with_name(self.state_path.name + ".tmp")
            tmp.write_bytes(data.ljust(STATE_PAGE))
            os.replace(tmp, self.state_path)
            if len(data) <= STATE_PAGE:
                self._state_fd = os.open(self.state_path, os.O_WRONLY)

    def _close_state(self) -> None:
        if self._state_fd is not None:
            os.close(self._state_fd)
            self._state_fd = None

    # --- workers -------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        timeout = httpx.Timeout(self.options.stall_timeout, connect=self.options.connect_timeout)
        extra: dict[str, Any] = {}
        if self.url_guard:  # pinned to checked addresses, so no proxy (httpx ignored proxy settings here before too)
            backend = PublicOnlyBackend(exempt=self.trusted_hosts)
            extra = {"event_hooks": {"request": [self._guard]}, "transport": pinned_transport(backend)}
        elif not _proxies_configured():  # otherwise httpx's own transport, which goes through them
            extra = {"transport": Http11Transport()}
        return httpx.Client(follow_redirects=True, timeout=timeout, headers={"Accept-Encoding": "identity"}, **extra)

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

    def _run_workers(self, count: int) -> None:
        self._stop_workers.clear()
        workers = [threading.Thread(target=self._worker, name=f"transfer-{i}", daemon=True) for i in range(count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _take(self) -> Segment | None:
        with self._lock:
            for segment in self.segments:
                if not segment.complete and not segment.taken:
                    segment.taken = True
                    return segment
        return None

    def _worker(self) -> None:
        failures = 0
        buffer = memoryview(bytearray(READ_SIZE))  # reused: see models/hashfeed.py on fresh buffers
        with self._client() as client:
            self._clients.add(client)
            try:
                while not self._stop_workers.is_set():
                    if self.cancel.is_set():
                        return
                    segment = self._take()
                    if segment is None:
                        return
                    before = segment.done
                    try:
                        self._fetch(client, segment, buffer)
                        failures = 0
                    except _Retry as retry:
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
                    except _RangeUnsupported as exc:
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

    def _fetch(self, client: httpx.Client, segment: Segment, buffer: memoryview) -> None:
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
                self._check(response, url, position, segment, ranged_request)
                if str(response.url) != self.remote.url:
                    self._cdn_url = str(response.url)
                read = _body_reader(response)
                while True:
                    if self.cancel.is_set():
                        raise TransferCancelled()
                    # bytes the hasher is about to reach go straight into its memory
                    view = self._feed.space(position, self.cancel.is_set) or buffer
                    count = read(view)
                    if not count:
                        break
                    if segment.end is not None and position + count > segment.end:
                        raise _Retry("the server sent more bytes than asked for")
                    _write_all(self._open_fd, view[:count], position)
                    self._feed.commit(position, count)  # before the bytes count: the hasher may want them
                    position += count
                    self._advance(segment, count)
        except httpx.TimeoutException as exc:
            raise _Retry(
                f"no data for {self.options.stall_timeout:.0f}s ({type(exc).__name__})", phase="stalled"
            ) from exc
        except httpx.TransportError as exc:
            if self.cancel.is_set():
                raise TransferCancelled() from exc
            raise _Retry(f"connection failed ({type(exc).__name__})") from exc
        finally:
            self._feed.abandon()
        if segment.end is None:
            with self._lock:  # a stream of unknown length ended cleanly: now the size is known
                segment.end = position
                self.size = position
        elif position < segment.end:
            raise _Retry(f"the connection ended {segment.end - position} bytes early")

    def _check(self, response: httpx.Response, url: str, position: int, segment: Segment, ranged: bool) -> None:
        status = response.status_code
        via_cdn = url != self.remote.url
        if status in (401, 403, 404, 410) and (via_cdn or response.history):
            # A signed redirect target that expired (or was revoked): go back to the origin.
            self._cdn_url = None
            raise _Retry(f"the download URL was refused ({status}); resolving it again", delay=0)
        if status == 404:
            raise NotFound(f"{self.remote.file}: the server has no such file")
        if status in (401, 403):
            # which it is: 401 no or a bad token (private, or gated without one), 403 a token without access (gated)
            reason = response.headers.get("x-error-message") or (
                "credentials missing or refused" if status == 401 else "access denied"
            )
            raise UpstreamAuthError(
                f"{self.remote.file}: the server refused access ({status}: {reason})",
                details={"upstream_status": status},
            )
        if status == 416 or status == 501:
            raise _RangeUnsupported(f"the server refused a Range request ({status})")
        if status == 429 or status >= 500:
            after = response.headers.get("retry-after", "")
            raise _Retry(f"the server answered {status}", delay=min(float(after), 60.0) if after.isdigit() else None)
        if status not in (200, 206):
            raise UpstreamError(f"{self.remote.file}: unexpected HTTP status {status}")
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind in _ERROR_TYPES:
            raise _Retry(f"the server sent a {kind} page instead of the file")
        total = None
        if status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
            expected_last = None if segment.end is None else segment.end - 1
            if (
                not match
                or int(match.group(1)) != position
                or (expected_last is not None and int(match.group(2)) != expected_last)
            ):
                raise _RangeUnsupported(
                    f"the server answered a Range request with {response.headers.get('content-range')!r}"
                )
            total = None if match.group(3) == "*" else int(match.group(3))
        else:
            if ranged and position > 0:
                raise _RangeUnsupported("the server ignored the Range request")
            if ranged and segment.end != self.size:
                raise _RangeUnsupported("the server ignored the Range request")
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
        if total is not None and self.size is not None and total != self.size:
            raise VerificationError(f"{self.remote.file}: the server has {total} bytes, the registry said {self.size}")

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
                snapshot, sequence = self._state(), self._sequence
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

    def _hash_loop(self, sha: Any) -> None:  # a hashlib object
        # reused: a fresh 8 MiB bytes per read had the allocator map it anew, faulting in all its pages
        buffer = memoryview(bytearray(HASH_BLOCK))
        try:
            while True:
                with self._lock:
                    while self._contiguous() <= self.hashed and not self._finished:
                        self._progressed.wait(0.5)
                    target = self._contiguous()
                    finished = self._finished
                while self.hashed < target:
                    block = self._feed.peek(self.hashed, target)
                    if block is not None:
                        sha.update(block)
                        self.hashed += len(block)
                        self._feed.consumed(len(block))
                        continue
                    count = _read_at(self._open_fd, buffer[: target - self.hashed], self.hashed)  # not in memory
                    if not count:
                        break
                    sha.update(buffer[:count])
                    self.hashed += count
                    self._feed.skip_to(self.hashed)
                if finished and self.hashed >= self._contiguous():
                    return
        finally:
            self._feed.close()  # a connection waiting for the hasher must not wait for one that is gone

    def _verify(self, sha: Any) -> str:
        self.phase = "verifying"
        actual_size = os.fstat(self._open_fd).st_size
        if self.size is not None and (actual_size != self.size or self.hashed != self.size):
            self.discard()  # its state says "complete": kept, every later attempt would fail the same way
            raise VerificationError(f"{self.remote.file}: got {self.hashed} bytes, expected {self.size}")
        if self.expect_gguf and os.pread(self._open_fd, 4, 0) != b"GGUF":
            self.discard()
            raise VerificationError(f"{self.remote.file}: the server sent something that is not a GGUF file")
        digest = sha.hexdigest()
        if self.remote.digest and self.remote.digest.split("-", 1)[-1].split(":", 1)[-1] != digest:
            self.discard()
            raise VerificationError(
                f"{self.remote.file}: sha256 {digest} does not match the published {self.remote.digest}"
            )
        return digest


def _body_reader(response: httpx.Response) -> Callable[[memoryview], int]:
    """`read(buffer) -> count` (0 at the end) for the body: straight off the socket with the
    http11 transport; copied from httpx's pieces with its own (the proxy case)."""
    readinto = response.extensions.get(READINTO)
    if readinto is not None:
        return readinto
    pieces = response.iter_raw()
    pending = memoryview(b"")

    def read(view: memoryview) -> int:
        nonlocal pending
        while not pending:
            piece = next(pieces, None)
            if piece is None:
                return 0
            pending = memoryview(piece)
        count = min(len(view), len(pending))
        view[:count], pending = pending[:count], pending[count:]
        return count

    return read


def _read_at(fd: int, view: memoryview, offset: int) -> int:
    if hasattr(os, "preadv"):  # into `view`, no new buffer (macOS has it from 11 on)
        return os.preadv(fd, [view], offset)
    data = os.pread(fd, len(view), offset)
    view[: len(data)] = data
    return len(data)


def _write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    # The hasher may take these bytes from memory, so the file must hold every one of them:
    # a short write cannot be left for the digest to catch.
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if not written:
            raise OSError(errno.EIO, "the partial file took no bytes")
        view, offset = view[written:], offset + written


def _proxies_configured() -> bool:
    """Whether proxy settings (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) exist: httpx reads the same."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))
