"""A cache of database reads that is never stale.

Every entry is tagged with the database's generation: a number that changes
whenever any connection, in any process, commits. A lookup first reads the
generation; if it moved, the whole cache is dropped. Pulls, which read the
same few rows again and again between pushes, are then served from memory,
and a push seen by one worker is seen by every worker's next read.

The generation comes from a `Generation`. On SQLite it is `PRAGMA
data_version` on a connection that never writes. Other databases have no such
counter: with Redis, `dockyard.state.generation.RedisGeneration` keeps one that
every write transaction advances after it commits; without Redis nothing is
cached there (`NoGeneration`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Hashable
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

_MAX_ENTRIES = 50_000


class Generation(Protocol):
    """A value that changes whenever any process commits a write."""

    async def current(self) -> Hashable | None:
        """The generation now; None when unknown (then nothing is cached)."""
        ...

    async def advance(self) -> None:
        """Called after every committed write transaction of this process."""
        ...

    def close(self) -> None: ...


class SqliteGeneration:
    """`PRAGMA data_version`: SQLite changes it on every commit by another
    connection, in any process; the probe connection itself never writes."""

    def __init__(self, path: Path) -> None:
        self._probe = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None
        )

    async def current(self) -> Hashable | None:
        return self._probe.execute("PRAGMA data_version").fetchone()[0]

    async def advance(self) -> None:
        pass  # SQLite does it

    def close(self) -> None:
        self._probe.close()


class NoGeneration:
    """No shared counter: every read goes to the database."""

    async def current(self) -> Hashable | None:
        return None

    async def advance(self) -> None:
        pass

    def close(self) -> None:
        pass


class ReadCache:
    def __init__(self, generation: Generation | Path | None) -> None:
        if isinstance(generation, Path):
            generation = SqliteGeneration(generation)
        self.generation: Generation = generation or NoGeneration()
        self._generation: Hashable | None = None
        self._entries: dict[Hashable, Any] = {}

    async def get_or_load(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value for `key`, or `load()`'s, remembered while valid."""
        generation = await self.generation.current()
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

    async def invalidate(self) -> None:
        """A write committed: advance the generation for every process."""
        await self.generation.advance()

    def close(self) -> None:
        self.generation.close()
