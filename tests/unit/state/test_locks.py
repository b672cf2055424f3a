"""One suite for every `Locks` implementation."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.state.locks import LockBusy, MemoryLocks, RedisLocks, hold


@pytest.fixture(params=["memory", "redis"])
def make_locks(request):
    """A factory of `Locks` views onto one backend: two calls give two
    processes' views of the same locks (shared for Redis)."""
    if request.param == "memory":
        locks = MemoryLocks()
        return lambda: locks
    store = request.getfixturevalue("store")
    return lambda: RedisLocks(store)


async def test_acquire_when_held_by_another_returns_none(make_locks):
    first, second = make_locks(), make_locks()

    token = await first.acquire("gc", ttl=10)
    other = await second.acquire("gc", ttl=10)

    assert token is not None
    assert other is None


async def test_release_with_a_stale_token_keeps_the_new_holders_lock(make_locks):
    locks = make_locks()
    old = await locks.acquire("gc", ttl=0.05)
    await asyncio.sleep(0.2)
    new = await locks.acquire("gc", ttl=10)

    released = await locks.release("gc", old)

    assert new is not None and not released
    assert await locks.acquire("gc", ttl=10) is None


async def test_release_by_holder_frees_the_lock(make_locks):
    locks = make_locks()
    token = await locks.acquire("gc", ttl=10)

    released = await locks.release("gc", token)

    assert released
    assert await make_locks().acquire("gc", ttl=10) is not None


async def test_renew_keeps_the_lock_past_its_first_ttl(make_locks):
    locks = make_locks()
    token = await locks.acquire("gc", ttl=0.3)

    for _ in range(4):
        await asyncio.sleep(0.1)
        assert await locks.renew("gc", token, ttl=0.3)

    assert await make_locks().acquire("gc", ttl=10) is None


async def test_renew_after_expiry_and_takeover_fails(make_locks):
    locks = make_locks()
    token = await locks.acquire("gc", ttl=0.05)
    await asyncio.sleep(0.2)
    await make_locks().acquire("gc", ttl=10)

    assert not await locks.renew("gc", token, ttl=10)


async def test_hold_refuses_a_held_lock_and_frees_it_at_the_end(make_locks):
    async with hold(make_locks(), "migration", ttl=5):
        with pytest.raises(LockBusy):
            async with hold(make_locks(), "migration", ttl=5):
                pass

    async with hold(make_locks(), "migration", ttl=5) as held:
        assert not held.lost.is_set()


async def test_hold_renews_while_a_long_body_runs(make_locks):
    async with hold(make_locks(), "gc", ttl=0.3) as held:
        await asyncio.sleep(1.0)  # over three TTLs

        assert await make_locks().acquire("gc", ttl=10) is None
        assert not held.lost.is_set()


async def test_hold_sets_lost_when_the_lock_was_taken_over(make_locks):
    locks = make_locks()
    async with hold(locks, "gc", ttl=0.3) as held:
        # Someone frees it by force (as a Redis that lost its data would).
        await locks.release("gc", held.token)
        await make_locks().acquire("gc", ttl=10)

        await asyncio.wait_for(held.lost.wait(), timeout=5)

    assert await make_locks().acquire("gc", ttl=10) is None  # not ours to free


async def test_redis_lock_keys_live_under_the_prefix(store):
    await RedisLocks(store).acquire("gc", ttl=10)

    keys = [key async for key in store.client.scan_iter(match=store.prefix + "*")]

    assert keys == [f"{store.prefix}lock:gc".encode()]
