"""One suite for every `JobQueue` implementation."""

from __future__ import annotations

import pytest

from dockyard.jobs.queue import MemoryQueue, RedisQueue


@pytest.fixture(params=["memory", "redis"])
def queue(request):
    if request.param == "memory":
        return MemoryQueue()
    return RedisQueue(request.getfixturevalue("store"))


async def test_queue_pops_in_the_order_pushed(queue):
    for task_id in (3, 1, 2):
        await queue.push(task_id)

    popped = [await queue.pop(timeout=1) for _ in range(3)]

    assert popped == [3, 1, 2]
    assert await queue.depth() == 0


async def test_queue_pop_on_empty_queue_returns_none_after_timeout(queue):
    assert await queue.pop(timeout=0.1) is None


async def test_redis_queue_is_shared_by_workers(store):
    await RedisQueue(store).push(7)

    assert await RedisQueue(store).pop(timeout=1) == 7
