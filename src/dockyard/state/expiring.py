"""Keys remembered for a while: e.g. credentials verified a moment ago.

A cache, never a record: a key may be forgotten at any time (memory bound,
Redis restart, Redis unreachable), and callers must then do the real work.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from redis.exceptions import RedisError

from dockyard.state.store import RedisStore

log = logging.getLogger(__name__)

_MAX_MEMORY_KEYS = 1024


class ExpiringKeys(Protocol):
    async def contains(self, key: str) -> bool:
        """Whether `key` was added less than its TTL ago (False if unknown)."""
        ...

    async def add(self, key: str, ttl: float) -> None:
        """Remember `key` for `ttl` seconds (best effort)."""
        ...


class MemoryExpiringKeys:
    def __init__(self, max_keys: int = _MAX_MEMORY_KEYS) -> None:
        self._until: dict[str, float] = {}
        self._max_keys = max_keys

    async def contains(self, key: str) -> bool:
        until = self._until.get(key)
        return until is not None and until > time.monotonic()

    async def add(self, key: str, ttl: float) -> None:
        if len(self._until) >= self._max_keys:
            self._until.clear()
        self._until[key] = time.monotonic() + ttl


class RedisExpiringKeys:
    """Keys under `<prefix><namespace>:`; shared by every replica."""

    def __init__(self, store: RedisStore, namespace: str) -> None:
        self.store = store
        self.namespace = namespace

    async def contains(self, key: str) -> bool:
        try:
            return bool(await self.store.client.exists(self._key(key)))
        except RedisError as exc:
            log.warning("cache_unavailable namespace=%s error=%s", self.namespace, exc)
            return False

    async def add(self, key: str, ttl: float) -> None:
        try:
            await self.store.client.set(
                self._key(key), b"1", px=max(1, int(ttl * 1000))
            )
        except RedisError as exc:
            log.warning("cache_unavailable namespace=%s error=%s", self.namespace, exc)

    def _key(self, key: str) -> str:
        return self.store.key(self.namespace, key)
