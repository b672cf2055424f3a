"""One suite for every `FailedLogins` implementation."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.auth.throttle import (
    MAX_PER_CLIENT,
    MAX_PER_USER_AND_CLIENT,
    MemoryFailedLogins,
    RedisFailedLogins,
)


@pytest.fixture(params=["memory", "redis"])
def make_failures(request):
    """A factory of views onto one backend (shared for Redis)."""
    if request.param == "memory":
        return MemoryFailedLogins
    store = request.getfixturevalue("store")
    return lambda window=300: RedisFailedLogins(store, window)


async def test_throttle_trips_after_repeated_failures_for_one_user(make_failures):
    failures = make_failures()
    for _ in range(MAX_PER_USER_AND_CLIENT):
        await failures.record("carol", "10.0.0.1")

    assert await failures.throttled("carol", "10.0.0.1")
    assert not await failures.throttled("carol", "10.0.0.2")


async def test_throttle_below_the_limit_lets_logins_through(make_failures):
    failures = make_failures()
    for _ in range(MAX_PER_USER_AND_CLIENT - 1):
        await failures.record("carol", "10.0.0.1")

    assert not await failures.throttled("carol", "10.0.0.1")


async def test_throttle_trips_for_a_client_spraying_usernames(make_failures):
    failures = make_failures()
    for index in range(MAX_PER_CLIENT):
        await failures.record(f"user{index}", "10.0.0.1")

    assert await failures.throttled("anyone", "10.0.0.1")


async def test_throttle_forgets_failures_older_than_the_window(make_failures):
    failures = make_failures(window=0.3)
    for _ in range(MAX_PER_USER_AND_CLIENT):
        await failures.record("carol", "10.0.0.1")

    await asyncio.sleep(0.5)

    assert not await failures.throttled("carol", "10.0.0.1")


async def test_flooding_with_unknown_usernames_keeps_a_victims_failures(make_failures):
    failures = make_failures()
    for _ in range(MAX_PER_USER_AND_CLIENT):
        await failures.record("carol", "10.0.0.1")

    for index in range(20_000):  # as the login path does: check, then record
        if not await failures.throttled(f"junk{index}", "10.0.0.9"):
            await failures.record(f"junk{index}", "10.0.0.9")

    assert await failures.throttled("carol", "10.0.0.1")


async def test_redis_throttle_is_shared_between_replicas(store):
    for _ in range(MAX_PER_USER_AND_CLIENT):
        await RedisFailedLogins(store).record("carol", "10.0.0.1")

    assert await RedisFailedLogins(store).throttled("carol", "10.0.0.1")
