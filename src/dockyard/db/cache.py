"""A cache of database reads that is never stale.

Every entry is tagged with the database's generation: a number that changes
whenever any connection, in any process, commits. A lookup first reads the
generation; if it moved, the whole cache is dropped. Pulls, which read the
same few rows again and again between pushes, are then served from memory,
and a push seen by one worker is seen by every worker's next read.

On SQLite the generation is `PRAGMA data_version` on a connection that never
writes. Other databases have no such counter yet, so nothing is cached there
(the Redis-backed invalidation of the production mode will provide one).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_MAX_ENTRIES = 50_000


class ReadCache:
    def __init__(self, sqlite_path: Path | None) -> None:
        self._probe = (
            sqlite3.connect(sqlite_path, check_same_thread=False, isolation_level=None)
            if sqlite_path is not None
            else None
        )
        self._generation: int | None = None
        self._entries: dict[Hashable, Any] = {}

    async def get_or_load(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value for `key`, or `load()`'s, remembered while valid."""
        generation = self._current_generation()
        if generation is None:
            return await load()
        if generation != self._generation:
            self._entries.clear()
            self._generation = generation
        try:
            return self._entries[key]
        except KeyError:
            pass
        value = await load()
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        # Only keep what was read under the generation checked before reading.
        if self._generation == generation:
            self._entries[key] = value
        return value

    def _current_generation(self) -> int | None:
        if self._probe is None:
            return None
        return self._probe.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
