"""Byte-range rules."""

import pytest

from dockyard.registry.errors import RangeNotSatisfiable
from dockyard.registry.ranges import parse_content_range, parse_range, single_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", "bytes=0-9"),
        (" bytes=-10 ", "bytes=-10"),
        ("bytes=5-", "bytes=5-"),
        ("bytes=-", None),
        ("bytes=0-1,5-6", None),
        ("items=0-9", None),
        (None, None),
    ],
)
def test_single_range_keeps_one_byte_range_only(header, expected):
    assert single_range(header) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes 0-9/100", (0, 9, 100)),
        ("bytes 99-99/100", (99, 99, 100)),
        ("bytes 9-0/100", None),
        ("bytes 0-100/100", None),
        ("bytes */100", None),
        ("bytes 0-9/*", None),
        (None, None),
    ],
)
def test_parse_content_range_accepts_only_consistent_ranges(header, expected):
    assert parse_content_range(header) == expected


_DIGITS = "9" * 5000  # more than Python converts to an int


def test_parse_range_beyond_any_size_is_not_satisfiable():
    with pytest.raises(RangeNotSatisfiable):
        parse_range(f"bytes={_DIGITS}-", 1000)


@pytest.mark.parametrize(
    ("header", "expected"),
    [(f"bytes=0-{_DIGITS}", (0, 999)), (f"bytes=-{_DIGITS}", (0, 999))],
)
def test_parse_range_with_an_endless_number_stops_at_the_blob_end(header, expected):
    assert parse_range(header, 1000) == expected


def test_parse_content_range_with_an_endless_size_is_refused():
    assert parse_content_range(f"bytes 0-9/{_DIGITS}") is None
