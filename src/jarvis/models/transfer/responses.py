"""What a response must be before its body is written into a model file, the errors a
transfer retries, and the reader that takes a body straight off the socket."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx

from jarvis.errors import NotFound, UpstreamAuthError, UpstreamError, VerificationError
from jarvis.models.http11 import READINTO
from jarvis.models.transfer.segments import Segment

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_ERROR_TYPES = ("text/html", "application/json", "application/xml", "text/xml", "text/plain")


class TransferCancelled(Exception):
    pass


class Retry(Exception):
    """A failed attempt worth trying again; `phase` is what progress shows meanwhile, and
    `refresh` says the signed CDN URL must be resolved again from the origin first."""

    def __init__(
        self, message: str, *, phase: str = "retrying", delay: float | None = None, refresh: bool = False
    ) -> None:
        super().__init__(message)
        self.phase = phase
        self.delay = delay
        self.refresh = refresh


class RangeUnsupported(Exception):
    pass


def check_response(
    response: httpx.Response,
    *,
    file: str,
    via_cdn: bool,
    position: int,
    segment: Segment,
    ranged: bool,
    size: int | None,
) -> None:
    """Raise unless `response` carries the bytes of `segment` from `position` on: Retry (worth
    another attempt), RangeUnsupported (fall back to one stream), NotFound, UpstreamAuthError,
    UpstreamError, VerificationError (the server's size is not the registry's)."""
    status = response.status_code
    if status in (401, 403, 404, 410) and (via_cdn or response.history):
        # A signed redirect target that expired (or was revoked): go back to the origin.
        raise Retry(f"the download URL was refused ({status}); resolving it again", delay=0, refresh=True)
    if status == 404:
        raise NotFound(f"{file}: the server has no such file")
    if status in (401, 403):
        # which it is: 401 no or a bad token (private, or gated without one), 403 a token without access (gated)
        reason = response.headers.get("x-error-message") or (
            "credentials missing or refused" if status == 401 else "access denied"
        )
        raise UpstreamAuthError(
            f"{file}: the server refused access ({status}: {reason})", details={"upstream_status": status}
        )
    if status == 416 or status == 501:
        raise RangeUnsupported(f"the server refused a Range request ({status})")
    if status == 429 or status >= 500:
        after = response.headers.get("retry-after", "")
        raise Retry(f"the server answered {status}", delay=min(float(after), 60.0) if after.isdigit() else None)
    if status not in (200, 206):
        raise UpstreamError(f"{file}: unexpected HTTP status {status}")
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in _ERROR_TYPES:
        raise Retry(f"the server sent a {kind} page instead of the file")
    total = None
    if status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
        expected_last = None if segment.end is None else segment.end - 1
        if (
            not match
            or int(match.group(1)) != position
            or (expected_last is not None and int(match.group(2)) != expected_last)
        ):
            raise RangeUnsupported(
                f"the server answered a Range request with {response.headers.get('content-range')!r}"
            )
        total = None if match.group(3) == "*" else int(match.group(3))
    else:
        if ranged and position > 0:
            raise RangeUnsupported("the server ignored the Range request")
        if ranged and segment.end != size:
            raise RangeUnsupported("the server ignored the Range request")
        length = response.headers.get("content-length")
        total = int(length) if length and length.isdigit() else None
    if total is not None and size is not None and total != size:
        raise VerificationError(f"{file}: the server has {total} bytes, the registry said {size}")


def body_reader(response: httpx.Response) -> Callable[[memoryview], int]:
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
