"""Refusing clients that keep failing to log in.

Two limits over a sliding window: failures for one username from one client
(a guessed password), and failures from one client whatever the username (a
sprayed list of names). Bounded memory: the least recently failing keys are
forgotten first, so flooding the table cannot wipe a victim's record.
In-process; the production mode shares it through Redis.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Hashable

WINDOW_SECONDS = 300
MAX_PER_USER_AND_CLIENT = 10
MAX_PER_CLIENT = 100
_MAX_KEYS = 10_000


class FailedLogins:
    def __init__(self) -> None:
        self._failures: OrderedDict[Hashable, deque[float]] = OrderedDict()

    def throttled(self, username: str, client: str) -> bool:
        """Whether this login attempt must be refused without checking it."""
        return (
            self._count(("user", username, client)) >= MAX_PER_USER_AND_CLIENT
            or self._count(("client", client)) >= MAX_PER_CLIENT
        )

    def record(self, username: str, client: str) -> None:
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
        horizon = time.monotonic() - WINDOW_SECONDS
        while moments and moments[0] <= horizon:
            moments.popleft()
        return len(moments)
