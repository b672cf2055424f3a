"""The read cache's generation kept in Redis, for databases without one.

Every committed write transaction sets the key to a new random value; every
cached read first reads it (`dockyard.db.cache`). Random values, not a
counter: after Redis lost its data a counter would count 1, 2, 3 again and
could meet a value some process still has entries for; a random value never
comes back.

Staleness is bounded even when a replica cannot reach Redis for a moment
after its commit (its advance is lost): the generation also changes with the
minute, so no entry outlives `_MAX_AGE_SECONDS`. When Redis cannot be read,
nothing is cached.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Hashable

from redis.exceptions import RedisError

from dockyard.state.store import RedisStore

log = logging.getLogger(__name__)

_MAX_AGE_SECONDS = 60


class RedisGeneration:
    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self._key = store.key("db", "generation")

    async def current(self) -> Hashable | None:
        try:
            value = await self.store.client.get(self._key)
            if value is None:
                await self.store.client.set(self._key, _new_value(), nx=True)
                value = await self.store.client.get(self._key)
        except RedisError as exc:
            log.warning("generation_unavailable error=%s", exc)
            return None
        if value is None:
            return None
        return (value, int(time.time() // _MAX_AGE_SECONDS))

    async def advance(self) -> None:
        try:
            await self.store.client.set(self._key, _new_value())
        except RedisError as exc:
            # Other replicas may serve what this write changed for up to
            # _MAX_AGE_SECONDS.
            log.warning("generation_not_advanced error=%s", exc)

    def close(self) -> None:
        pass  # the store is closed by its owner


def _new_value() -> bytes:
    return secrets.token_bytes(16)
