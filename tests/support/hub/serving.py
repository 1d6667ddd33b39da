"""Serving a file's bytes as a real server does (Range, Content-Range, 416), with the faults a
test injects: drops, stalls, corruption, broken Range handling, throttling, error pages."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from starlette.requests import Request
from starlette.responses import Response

from tests.support.hub.content import CHUNK, Blob

HTML_ERROR = (
    b"<!DOCTYPE html>\n<html><head><title>429 Too Many Requests</title></head>"
    b"<body><h1>Too Many Requests</h1><p>You have been rate limited. Please retry later.</p></body></html>\n"
)
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
_UNSATISFIABLE = "unsatisfiable"


@dataclass
class Fault:
    """A misbehaviour of the hub for one file (or one request path).

    Register it as `hub.faults[key] = Fault(...)`; `key` is matched against the file being
    served (an HF file name such as `"model-Q4_K_M.gguf"` or `"sub/dir/x.gguf"`, a digest as
    `"sha256:<hex>"` or bare hex, a plain path such as `"/files/x.gguf"`) or against the
    request path itself (`"/v2/library/gemma3/manifests/270m"`).

    Which requests it affects:
    - file keys affect GET requests that transfer the file's bytes (the CDN, `/files/…`, and
      `resolve` of a small file); HEAD requests are never faulted, so probing stays reliable;
    - path keys affect every request to that exact path (any method), so `status` and
      `html_error` also work for metadata endpoints (`/api/…`, manifests, `resolve` redirects);
    - `expire_after` counts every request (GET or HEAD) made with one signed CDN URL.
    A request takes the first registered fault that matches it, has `times` left and would
    change something for it; that costs one of `times` (None: every request) and adds one to
    `hits`. Several effects in one Fault apply together.

    Offsets (`drop_at`, `stall_at`, `corrupt_at`) are absolute positions in the file. A drop
    or stall happens only in a response whose body starts before that offset and runs past
    it, so a client that resumes from where it was cut gets through even with `times=None`.
    """

    drop_at: int | None = None  # close the TCP connection abruptly once the body reaches this offset
    stall_at: int | None = None  # stop sending at this offset, keep the connection open …
    stall_seconds: float = 30.0  # … for this long, or until the client goes away, then go on
    corrupt_at: int | None = None  # flip the byte at this offset (XOR 0xFF) in what is sent
    ignore_range: bool = False  # answer a ranged request with 200 and the whole body
    refuse_range: bool = False  # answer a ranged request with `refuse_status` …
    refuse_status: int = 501  # … 501 Not Implemented, or 416 (with `Content-Range: bytes */size`)
    bad_content_range: bool = False  # 206 with other bytes than asked, truthfully labelled: see `_shifted`
    expire_after: int | None = None  # a signed CDN URL answers "Request has expired" from its N+1-th use
    throttle_bps: int | None = None  # send the body at this many bytes per second
    status: int | None = None  # answer this HTTP status (plain-text body) instead
    retry_after: int | None = None  # with `status`: a `Retry-After` header, in seconds
    html_error: bool = False  # answer 200 `text/html` with a rate-limit page instead of the file
    truncate_to: int | None = None  # declare the full Content-Length, close after this many body bytes
    times: int | None = None  # how many requests it affects; None: all
    hits: int = 0  # how many requests it has affected so far (kept by the hub)

    def _left(self) -> bool:
        return self.times is None or self.hits < self.times


class Abort(Exception):
    """Raised inside a response body so that uvicorn closes the connection mid-body."""


class QuietAborts(logging.Filter):
    """Keeps uvicorn from logging the deliberate aborts as application errors, and a stalled
    response cut short by `stop()` as a failure."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "graceful shutdown exceeded" in record.getMessage():
            return False
        exc = record.exc_info[1] if record.exc_info else None
        return not (is_abort(exc) or (isinstance(exc, asyncio.CancelledError) and "graceful shutdown" in str(exc)))


def is_abort(exc: BaseException | None) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(is_abort(inner) for inner in exc.exceptions)
    return isinstance(exc, Abort)


def _parse_range(value: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, stop) with stop exclusive; None to send the whole body (no Range, or one that
    RFC 9110 says to ignore: malformed, several ranges, last < first); or _UNSATISFIABLE."""
    if value is None:
        return None
    match = _RANGE.match(value)
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        return _UNSATISFIABLE if suffix == 0 or size == 0 else (max(0, size - suffix), size)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return _UNSATISFIABLE
    return start, min(int(last) + 1, size) if last else size


def _shifted(start: int, stop: int, size: int) -> tuple[int, int]:
    """What `bad_content_range` sends instead of [start, stop): the same length from offset 0
    (or from offset 1 when the request started at 0), clipped to the file."""
    new_start = 0 if start > 0 else min(1, size - 1)
    return new_start, min(new_start + (stop - start), size)


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    return value[7:].strip() if value[:7].lower() == "bearer " else None


class FileBody(Response):
    """Streams [start, stop) of a blob from disk, applying the body faults of `fault`."""

    def __init__(
        self, blob: Blob, *, start: int, stop: int, status: int, headers: dict, fault: Fault | None, head: bool
    ) -> None:
        self.blob, self.start, self.stop, self.fault, self.head = blob, start, stop, fault, head
        self.status_code = status
        self.raw_headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()]
        self.background = None

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if self.head:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        gone = anyio.Event()
        abort = False
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                gone.set()
                group.cancel_scope.cancel()

            group.start_soon(watch)
            abort = await self._stream(send, gone)
            group.cancel_scope.cancel()
        if abort:
            raise Abort(f"{self.blob.path.name}: connection cut on purpose")

    def _plan(self) -> tuple[int, bool, int | None, int | None]:
        """Where sending ends, whether the connection is then cut, where to stall, what to corrupt."""
        fault, start, cut, abort = self.fault, self.start, self.stop, False
        if fault is None:
            return cut, abort, None, None
        if fault.drop_at is not None and start < fault.drop_at < self.stop:
            cut, abort = fault.drop_at, True
        if fault.truncate_to is not None and fault.truncate_to < self.stop - start:
            cut, abort = min(cut, start + fault.truncate_to), True
        stall = fault.stall_at if fault.stall_at is not None and start < fault.stall_at < cut else None
        corrupt = fault.corrupt_at if fault.corrupt_at is not None and start <= fault.corrupt_at < cut else None
        return cut, abort, stall, corrupt

    async def _stream(self, send, gone: anyio.Event) -> bool:
        cut, abort, stall, corrupt = self._plan()
        rate = self.fault.throttle_bps if self.fault and self.fault.throttle_bps else None
        pos, began = self.start, time.monotonic()
        with self.blob.path.open("rb") as handle:
            handle.seek(pos)
            while pos < cut:
                want = min(CHUNK, cut - pos)
                if stall is not None:
                    want = min(want, stall - pos)
                if rate:
                    want = min(want, max(1, rate // 20))
                data = handle.read(want)
                if not data:
                    return True  # the file shrank under us: never end a short body cleanly
                if corrupt is not None and pos <= corrupt < pos + len(data):
                    flipped = bytearray(data)
                    flipped[corrupt - pos] ^= 0xFF
                    data = bytes(flipped)
                await send({"type": "http.response.body", "body": data, "more_body": True})
                if gone.is_set():
                    return False
                pos += len(data)
                self.blob.sent += len(data)
                if rate:
                    delay = began + (pos - self.start) / rate - time.monotonic()
                    if delay > 0:
                        await anyio.sleep(delay)
                if stall is not None and pos == stall:
                    with anyio.move_on_after(self.fault.stall_seconds):
                        await gone.wait()
                    stall = None
                    if gone.is_set():
                        return False
        if abort:
            return True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return False


def serve(
    request: Request,
    blob: Blob,
    headers: dict[str, str],
    take_fault: Callable[[set[str], Callable[[Fault], bool]], Fault | None],
) -> Response:
    """Answer GET/HEAD for `blob` with Range support and the faults that apply."""
    size, head = blob.size, request.method == "HEAD"
    span = _parse_range(request.headers.get("range"), size)
    ranged = span is not None
    natural = (0, size) if span is None or span == _UNSATISFIABLE else span
    keys = {request.url.path} | (set() if head else blob.names)

    def affects(f: Fault) -> bool:
        if f.status or f.html_error:
            return True
        if head:
            return False
        if ranged and (f.refuse_range or f.ignore_range or f.bad_content_range):
            return True
        start, stop = natural
        return bool(
            f.throttle_bps
            or (f.drop_at is not None and start < f.drop_at < stop)
            or (f.stall_at is not None and start < f.stall_at < stop)
            or (f.corrupt_at is not None and start <= f.corrupt_at < stop)
            or (f.truncate_to is not None and f.truncate_to < stop - start)
        )

    fault = take_fault(keys, affects)
    if fault is not None and (fault.status or fault.html_error):
        return fault_response(fault)
    if ranged and fault is not None and fault.refuse_range:
        if fault.refuse_status == 416:
            return Response(b"", status_code=416, headers={"content-range": f"bytes */{size}"})
        body = b"Range requests are not supported\n"
        return Response(body, status_code=fault.refuse_status, media_type="text/plain")
    headers = {**headers, "accept-ranges": "bytes"}
    if ranged and fault is not None and fault.ignore_range:
        start, stop, status = 0, size, 200
    elif span == _UNSATISFIABLE:
        return Response(b"", status_code=416, headers={**headers, "content-range": f"bytes */{size}"})
    elif span is None:
        start, stop, status = 0, size, 200
    else:
        start, stop = span
        if fault is not None and fault.bad_content_range:
            start, stop = _shifted(start, stop, size)
        status = 206
    headers["content-length"] = str(stop - start)
    if status == 206:
        headers["content-range"] = f"bytes {start}-{stop - 1}/{size}"
    return FileBody(blob, start=start, stop=stop, status=status, headers=headers, fault=fault, head=head)


def fault_response(fault: Fault) -> Response:
    if fault.status:
        headers = {"retry-after": str(fault.retry_after)} if fault.retry_after is not None else {}
        body = f"{fault.status} injected by the test hub\n"
        return Response(body, status_code=fault.status, headers=headers, media_type="text/plain")
    return Response(HTML_ERROR, status_code=200, media_type="text/html; charset=utf-8")
