"""The queue of task ids waiting for a worker.

Why not huey: huey's workers are threads, processes or greenlets running
synchronous functions, and its consumer is a program of its own; Dockyard's
services are asyncio coroutines bound to one event loop (SQLite runs on the
loop's thread), so every huey task would need its own loop and services, and
the embedded mode could not run its jobs inside the server's loop. Huey's
periodic tasks also fire in every consumer that has them enabled, and its
queued messages would be the only copy of a job. What Dockyard needs of a
queue is small once the database records every job (see `dockyard.jobs`): a
FIFO of task ids, in memory or in a Redis list.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from redis.exceptions import RedisError

from dockyard.state.store import RedisStore, StateUnavailable

log = logging.getLogger(__name__)


class JobQueue(Protocol):
    async def push(self, task_id: int) -> None:
        """Offer `task_id` to a worker; raise `StateUnavailable` on failure
        (the task stays Pending in the database and is pushed again later)."""
        ...

    async def pop(self, timeout: float) -> int | None:
        """The next task id, waiting up to `timeout` seconds; None if none.
        Raise `StateUnavailable` when the queue cannot be read."""
        ...

    async def depth(self) -> int:
        """How many task ids wait."""
        ...


class MemoryQueue:
    """This process's queue: only its own workers see it."""

    def __init__(self) -> None:
        self._items: asyncio.Queue[int] = asyncio.Queue()

    async def push(self, task_id: int) -> None:
        self._items.put_nowait(task_id)

    async def pop(self, timeout: float) -> int | None:
        # Not asyncio.wait_for: on Python 3.11 it returns the item and drops
        # the cancellation when both come at once (see `raise_if_cancelled`).
        try:
            async with asyncio.timeout(timeout):
                return await self._items.get()
        except TimeoutError:
            return None

    async def depth(self) -> int:
        return self._items.qsize()


class RedisQueue:
    """A Redis list under `<prefix>jobs:queue`, shared by every worker."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self._key = store.key("jobs", "queue")

    async def push(self, task_id: int) -> None:
        try:
            await self.store.client.lpush(self._key, str(task_id))
        except RedisError as exc:
            raise StateUnavailable(f"cannot queue task {task_id}: {exc}") from exc

    async def pop(self, timeout: float) -> int | None:
        try:
            item = await self.store.client.brpop([self._key], timeout=timeout)
        except RedisError as exc:
            raise StateUnavailable(f"cannot read the job queue: {exc}") from exc
        if item is None:
            return None
        try:
            return int(item[1])
        except ValueError:
            log.warning("queue_item_invalid item=%r", item[1][:64])
            return None

    async def depth(self) -> int:
        try:
            return int(await self.store.client.llen(self._key))
        except RedisError as exc:
            raise StateUnavailable(f"cannot read the job queue: {exc}") from exc
