"""Byte ranges of blobs (RFC 9110, section 14): pure rules, no I/O.

Only a single `bytes=` range is honoured; anything else (several ranges,
another unit, garbage) is answered with the whole blob, as RFC 9110 allows.
"""

from __future__ import annotations

import re

from dockyard.registry.errors import RangeNotSatisfiable

_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")
_CONTENT_RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
# Past 18 digits a position exceeds any blob (and past 4300 Python refuses
# to convert it at all): such numbers are read as this one.
_HUGE_DIGITS = 18
_HUGE = 10**_HUGE_DIGITS


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
        start, end = max(size - _number(last), 0), size - 1
    else:
        start = _number(first)
        end = min(_number(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiable(size=size)
    return start, end


def _number(digits: str) -> int:
    """The value of a byte position or length given in decimal digits;
    `_HUGE` (more than any blob) for one too long to be a real size."""
    return int(digits) if len(digits) <= _HUGE_DIGITS else _HUGE


def parse_size(digits: str) -> int | None:
    """A blob size in decimal digits; None for one too long to be real."""
    found = _number(digits)
    return None if found >= _HUGE else found


def parse_content_range(header: str | None) -> tuple[int, int, int] | None:
    """(first, last, size) of a `Content-Range: bytes first-last/size`;
    None when absent, malformed or inconsistent."""
    match = _CONTENT_RANGE_RE.fullmatch(header.strip()) if header else None
    if match is None:
        return None
    first, last, size = (_number(value) for value in match.groups())
    if size >= _HUGE:
        return None
    if first > last or last >= size:
        return None
    return first, last, size
