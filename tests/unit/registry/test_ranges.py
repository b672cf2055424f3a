"""Byte-range rules."""

import pytest

from dockyard.registry.ranges import parse_content_range, single_range


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
