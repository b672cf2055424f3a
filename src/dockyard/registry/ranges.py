"""Byte ranges of blobs (RFC 9110, section 14): pure rules, no I/O.

Only a single `bytes=` range is honoured; anything else (several ranges,
another unit, garbage) is answered with the whole blob, as RFC 9110 allows.
"""

from __future__ import annotations

import re

from dockyard.registry.errors import RangeNotSatisfiable

_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")
_CONTENT_RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def single_range(header: str | None) -> str | None:
    """`header` (stripped) when it asks for one byte range; None when the
    whole blob is to be sent instead."""
    match = _RANGE_RE.fullmatch(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    return match.group(0)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a `Range` header asks of `size` bytes.

    None when the header is absent or not a single byte range (the whole blob
    is then sent); `RangeNotSatisfiable` when unsatisfiable.
    """
    wanted = single_range(header)
    if wanted is None:
        return None
    first, last = _RANGE_RE.fullmatch(wanted).groups()  # type: ignore[union-attr]
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiable(size=size)
    return start, end


def parse_content_range(header: str | None) -> tuple[int, int, int] | None:
    """(first, last, size) of a `Content-Range: bytes first-last/size`;
    None when absent, malformed or inconsistent."""
    match = _CONTENT_RANGE_RE.fullmatch(header.strip()) if header else None
    if match is None:
        return None
    first, last, size = (int(value) for value in match.groups())
    if first > last or last >= size:
        return None
    return first, last, size
