"""How the registry client reads an upstream's refusals."""

import httpx
import pytest

from dockyard.replication.client import UpstreamUnavailable, _raise_for_status

DATE = "Fri, 04 Dec 2026 20:00:00 GMT"


def _refusal(status, **headers):
    return httpx.Response(status, headers=headers)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "30"}, "30"),
        ({"retry-after": DATE}, DATE),
        ({"retry-after": "soon\r\nx-injected: 1"}, None),
        ({"ratelimit-reset": "120"}, "120"),
        ({"ratelimit-reset": "120;w=60"}, "120"),
        ({}, None),
    ],
)
def test_rate_limited_answer_keeps_a_valid_retry_after(headers, expected):
    with pytest.raises(UpstreamUnavailable) as raised:
        _raise_for_status(_refusal(429, **headers), "GET /v2/")

    assert (raised.value.status, raised.value.retry_after) == (429, expected)
