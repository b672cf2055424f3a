"""Refusing clients that keep failing to log in.

Two limits over a sliding window: failures for one username from one client
(a guessed password), and failures from one client whatever the username (a
sprayed list of names). Two implementations: `MemoryFailedLogins` in this
process, and `RedisFailedLogins`, shared by every replica, so that spreading
guesses over replicas gains nothing. Either may forget (memory bound, Redis
restart): that resets a throttle, it never locks anyone out for good.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Hashable
from typing import Protocol

from redis.exceptions import RedisError

from dockyard.state.store import RedisStore

log = logging.getLogger(__name__)

WINDOW_SECONDS = 300
MAX_PER_USER_AND_CLIENT = 10
MAX_PER_CLIENT = 100
_MAX_KEYS = 10_000


class FailedLogins(Protocol):
    async def throttled(self, username: str, client: str) -> bool:
        """Whether this login attempt must be refused without checking it."""
        ...

    async def record(self, username: str, client: str) -> None:
        """Count one failed login of `username` from `client`."""
        ...


class MemoryFailedLogins:
    """Bounded memory: the least recently failing keys are forgotten first, so
    flooding the table cannot wipe a victim's record."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self._failures: OrderedDict[Hashable, deque[float]] = OrderedDict()
        self._window = window

    async def throttled(self, username: str, client: str) -> bool:
        return (
            self._count(("user", username, client)) >= MAX_PER_USER_AND_CLIENT
            or self._count(("client", client)) >= MAX_PER_CLIENT
        )

    async def record(self, username: str, client: str) -> None:
        now = time.monotonic()
        for key in (("user", username, client), ("client", client)):
            moments = self._failures.pop(key, None) or deque()
            moments.append(now)
            self._failures[key] = moments
        while len(self._failures) > _MAX_KEYS:
            self._failures.popitem(last=False)

    def _count(self, key: Hashable) -> int:
        moments = self._failures.get(key)
        if not moments:
            return 0
        horizon = time.monotonic() - self._window
        while moments and moments[0] <= horizon:
            moments.popleft()
        return len(moments)


# One sorted set of failure times (ms, Redis's clock) per key. Each keeps at
# most its limit's worth of entries and expires with the window.
_RECORD = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', ms - window)
    redis.call('ZADD', key, ms, ARGV[2] .. ':' .. ms)
    redis.call('ZREMRANGEBYRANK', key, 0, -(tonumber(ARGV[2 + i]) + 1))
    redis.call('PEXPIRE', key, window)
end
return 1
"""
_THROTTLED = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', ms - window)
    if redis.call('ZCARD', key) >= tonumber(ARGV[1 + i]) then
        return 1
    end
end
return 0
"""


class RedisFailedLogins:
    """Failed logins counted in Redis, across replicas. When Redis cannot be
    reached, logins are not throttled (and a warning is logged): the throttle
    slows guessing, it must not stop every login."""

    def __init__(self, store: RedisStore, window: float = WINDOW_SECONDS) -> None:
        self.store = store
        self._window_ms = int(window * 1000)
        self._record = store.client.register_script(_RECORD)
        self._throttled = store.client.register_script(_THROTTLED)

    async def throttled(self, username: str, client: str) -> bool:
        try:
            result = await self._throttled(
                keys=self._keys(username, client),
                args=[self._window_ms, MAX_PER_USER_AND_CLIENT, MAX_PER_CLIENT],
            )
        except RedisError as exc:
            log.warning("throttle_unavailable error=%s", exc)
            return False
        return bool(result)

    async def record(self, username: str, client: str) -> None:
        # The random part keeps two failures in the same millisecond apart.
        member = secrets.token_hex(4)
        try:
            await self._record(
                keys=self._keys(username, client),
                args=[
                    self._window_ms,
                    member,
                    MAX_PER_USER_AND_CLIENT,
                    MAX_PER_CLIENT,
                ],
            )
        except RedisError as exc:
            log.warning("throttle_unavailable error=%s", exc)

    def _keys(self, username: str, client: str) -> list[str]:
        # Hashed: usernames are arbitrary text of any length.
        user = hashlib.sha256(f"{username}\0{client}".encode()).hexdigest()
        source = hashlib.sha256(client.encode()).hexdigest()
        return [
            self.store.key("throttle", "user", user),
            self.store.key("throttle", "client", source),
        ]
