"""Cutting a range out of a stream of pieces."""

import asyncio

import pytest

from dockyard.proxycache.fills import cut
from dockyard.replication.client import UpstreamUnavailable

DATA = bytes(range(256)) * 4


async def _pieces(data, size):
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _cut(data, piece_size, skip, length):
    async def collect():
        return b"".join([p async for p in cut(_pieces(data, piece_size), skip, length)])

    return asyncio.run(collect())


@pytest.mark.parametrize("piece_size", [1, 7, 100, 1024, 5000])
@pytest.mark.parametrize(("skip", "length"), [(0, 1024), (0, 1), (10, 90), (1023, 1)])
def test_cut_gives_exactly_the_bytes_asked(piece_size, skip, length):
    assert _cut(DATA, piece_size, skip, length) == DATA[skip : skip + length]


def test_cut_of_a_stream_that_ends_early_raises_unavailable():
    with pytest.raises(UpstreamUnavailable):
        _cut(DATA[:100], 10, 50, 100)
