"""The read cache over a Redis generation, as two replicas would use it."""

from __future__ import annotations

from dockyard.db.cache import ReadCache
from dockyard.state.generation import RedisGeneration


def counting_loader(source: dict):
    loads = []

    async def load():
        loads.append(source["v"])
        return source["v"]

    return load, loads


async def test_read_cache_serves_from_memory_until_any_replica_writes(store):
    source = {"v": 1}
    mine = ReadCache(RedisGeneration(store))
    other_replica = ReadCache(RedisGeneration(store))
    load, loads = counting_loader(source)

    first = await mine.get_or_load("k", load)
    cached = await mine.get_or_load("k", load)
    source["v"] = 2
    await other_replica.invalidate()  # the other replica committed a write
    after_write = await mine.get_or_load("k", load)

    assert (first, cached, after_write) == (1, 1, 2)
    assert loads == [1, 2]


async def test_read_cache_after_redis_lost_its_data_reloads(store):
    source = {"v": 1}
    cache = ReadCache(RedisGeneration(store))
    load, loads = counting_loader(source)
    await cache.get_or_load("k", load)

    source["v"] = 2
    await store.client.delete(store.key("db", "generation"))  # Redis restarted
    value = await cache.get_or_load("k", load)

    assert value == 2
    assert loads == [1, 2]
