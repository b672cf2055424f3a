"""One suite for every `ExpiringKeys` implementation."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.state.expiring import MemoryExpiringKeys, RedisExpiringKeys


@pytest.fixture(params=["memory", "redis"])
def keys(request):
    if request.param == "memory":
        return MemoryExpiringKeys()
    return RedisExpiringKeys(request.getfixturevalue("store"), "logins")


async def test_added_key_is_contained_until_its_ttl_ends(keys):
    await keys.add("k", ttl=0.2)

    before = await keys.contains("k")
    await asyncio.sleep(0.4)

    assert before
    assert not await keys.contains("k")


async def test_unknown_key_is_not_contained(keys):
    await keys.add("k", ttl=10)

    assert not await keys.contains("other")


async def test_redis_keys_are_seen_by_another_replica(store):
    await RedisExpiringKeys(store, "logins").add("k", ttl=10)

    assert await RedisExpiringKeys(store, "logins").contains("k")
    assert not await RedisExpiringKeys(store, "other").contains("k")
