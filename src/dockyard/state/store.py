"""The connection to Redis and the key prefix every Dockyard key lives under."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# Short timeouts: a slow Redis must not hold requests for long; callers treat
# a failure like a cache miss (or refuse the operation that needs a lock).
_SOCKET_TIMEOUT_SECONDS = 5.0


class StateUnavailable(Exception):
    """Redis could not be reached or refused the command."""


def raise_if_cancelled() -> None:
    """Raise `CancelledError` if the current task was cancelled yet runs on.

    On Python 3.11 redis-py sends every command under `asyncio.wait_for`
    (because of `socket_timeout`), and that returns normally when the task is
    cancelled just as the send completes (CPython gh-86296, fixed in 3.12):
    the cancellation is lost. A loop that runs until cancelled (scheduler,
    worker, lock renewal) would then run forever and its owner would wait
    forever at shutdown. The request stays counted in `Task.cancelling()`, so
    such loops call this once per round."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class RedisStore:
    """A Redis client and `prefix`. Create one per process and event loop.

    The URL may carry a password or an ACL user (`redis://user:pw@host/0`)
    and `rediss://` selects TLS; both are handled by redis-py."""

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=_SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=_SOCKET_TIMEOUT_SECONDS,
            health_check_interval=30,
        )

    def key(self, *parts: str) -> str:
        """The full key for `parts`, e.g. key("lock", "gc") -> "dockyard:lock:gc"."""
        return self.prefix + ":".join(parts)

    async def ping(self) -> None:
        """Raise `StateUnavailable` unless Redis answers."""
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            raise StateUnavailable(f"redis does not answer: {exc}") from exc

    async def close(self) -> None:
        await self.client.aclose()
