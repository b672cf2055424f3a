"""Named locks: one garbage collection, one migration, one scheduler at a time.

A lock is held for a time to live (TTL) and must be renewed before it runs
out; a holder that dies frees it when the TTL ends. `hold()` renews in the
background while its body runs. Every holder has a random token, and only the
holder of the token can renew or release, so a holder whose lock expired
cannot free a lock someone else took since.

Locks prevent wasted or conflicting work; whatever must never happen twice is
also guarded in the database (e.g. one execution per schedule tick), because
a Redis that loses its data frees every lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Protocol

from redis.exceptions import RedisError

from dockyard.state.store import RedisStore, StateUnavailable, raise_if_cancelled

log = logging.getLogger(__name__)


class LockBusy(Exception):
    """Someone else holds the lock."""


class Locks(Protocol):
    async def acquire(self, name: str, ttl: float) -> str | None:
        """Take `name` for `ttl` seconds; return the holder's token, or None
        when another holds it. Never waits."""
        ...

    async def renew(self, name: str, token: str, ttl: float) -> bool:
        """Extend the lock by `ttl` from now; False if `token` no longer holds it."""
        ...

    async def release(self, name: str, token: str) -> bool:
        """Free the lock if `token` holds it; False if it did not."""
        ...


class MemoryLocks:
    """Locks of this process only (the embedded default)."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}

    async def acquire(self, name: str, ttl: float) -> str | None:
        held = self._held.get(name)
        if held is not None and held[1] > time.monotonic():
            return None
        token = secrets.token_hex(16)
        self._held[name] = (token, time.monotonic() + ttl)
        return token

    async def renew(self, name: str, token: str, ttl: float) -> bool:
        if not self._holds(name, token):
            return False
        self._held[name] = (token, time.monotonic() + ttl)
        return True

    async def release(self, name: str, token: str) -> bool:
        if not self._holds(name, token):
            return False
        del self._held[name]
        return True

    def _holds(self, name: str, token: str) -> bool:
        held = self._held.get(name)
        return held is not None and held[0] == token and held[1] > time.monotonic()


# Compare-and-act: only the token's holder may extend or delete the key.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLocks:
    """Locks shared by every process that uses the same Redis and prefix."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self._renew = store.client.register_script(_RENEW)
        self._release = store.client.register_script(_RELEASE)

    async def acquire(self, name: str, ttl: float) -> str | None:
        token = secrets.token_hex(16)
        try:
            taken = await self.store.client.set(
                self._key(name), token, nx=True, px=_milliseconds(ttl)
            )
        except RedisError as exc:
            raise StateUnavailable(f"cannot take lock {name}: {exc}") from exc
        return token if taken else None

    async def renew(self, name: str, token: str, ttl: float) -> bool:
        try:
            result = await self._renew(
                keys=[self._key(name)], args=[token, _milliseconds(ttl)]
            )
        except RedisError as exc:
            raise StateUnavailable(f"cannot renew lock {name}: {exc}") from exc
        return bool(result)

    async def release(self, name: str, token: str) -> bool:
        try:
            result = await self._release(keys=[self._key(name)], args=[token])
        except RedisError as exc:
            raise StateUnavailable(f"cannot release lock {name}: {exc}") from exc
        return bool(result)

    def _key(self, name: str) -> str:
        return self.store.key("lock", name)


def _milliseconds(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class HeldLock:
    """A lock held by `hold()`; `lost` is set when a renewal failed."""

    def __init__(self, name: str, token: str) -> None:
        self.name = name
        self.token = token
        self.lost = asyncio.Event()


@contextlib.asynccontextmanager
async def hold(locks: Locks, name: str, ttl: float = 30.0) -> AsyncIterator[HeldLock]:
    """Hold `name` while the body runs, renewing it every third of `ttl`.

    Raise `LockBusy` if another holds it (without waiting). Should a renewal
    fail (Redis down, or the lock expired and was taken), `lost` is set: a
    long body checks it between steps and stops. The lock is released at the
    end whatever happens."""
    token = await locks.acquire(name, ttl)
    if token is None:
        raise LockBusy(f"lock {name} is held by another process")
    held = HeldLock(name, token)
    renewer = asyncio.create_task(_renew_until_lost(locks, held, ttl))
    try:
        yield held
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        with contextlib.suppress(StateUnavailable):
            await locks.release(name, token)


async def _renew_until_lost(locks: Locks, held: HeldLock, ttl: float) -> None:
    while True:
        raise_if_cancelled()
        await asyncio.sleep(ttl / 3)
        try:
            renewed = await locks.renew(held.name, held.token, ttl)
        except StateUnavailable:
            renewed = False
        if not renewed:
            log.warning("lock_lost name=%s", held.name)
            held.lost.set()
            return
