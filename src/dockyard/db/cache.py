"""A cache of database reads that is never stale.

Every entry is tagged with the database's generation: a value that changes
whenever any connection, in any process, commits. A lookup first reads the
generation; if it moved, the whole cache is dropped. Pulls, which read the
same few rows again and again between pushes, are then served from memory,
and a push seen by one worker is seen by every worker's next read.

Where the generation comes from is a `Generation`:

- SQLite: `PRAGMA data_version` on a connection that never writes
  (`SqliteDataVersion`); it moves by itself on every commit of any process.
- PostgreSQL has no such counter that costs less than the reads it would
  save, so on its own it gets no generation and nothing is cached: every
  replica reads the database. A shared store (Redis) can provide one: its
  `advance()` is called after every committed write of this process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Hashable
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

_MAX_ENTRIES = 50_000


class Generation(Protocol):
    """Where the cache learns that the database changed."""

    async def current(self) -> Hashable | None:
        """A value that differs from every earlier one once any process has
        committed a change since it was last read; None when it cannot be
        known right now (then nothing is served from or kept in the cache)."""

    async def advance(self) -> None:
        """Called after this process committed a write (counters that do not
        move by themselves move here)."""

    def close(self) -> None: ...


class SqliteDataVersion:
    """SQLite's own commit counter, read on a connection that never writes."""

    def __init__(self, path: Path) -> None:
        self._probe = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None
        )

    async def current(self) -> Hashable:
        return self._probe.execute("PRAGMA data_version").fetchone()[0]

    async def advance(self) -> None:
        """SQLite moves the counter on commit by itself."""

    def close(self) -> None:
        self._probe.close()


class ReadCache:
    """Values read from the database, kept while the generation stands still.
    Without a generation, every lookup loads."""

    def __init__(self, generation: Generation | None) -> None:
        self._source = generation
        self._generation: Hashable | None = None
        self._entries: dict[Hashable, Any] = {}

    async def get_or_load(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value for `key`, or `load()`'s, remembered while valid."""
        if self._source is None:
            return await load()
        generation = await self._source.current()
        if generation is None:
            self._entries.clear()
            self._generation = None
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
        """Forget everything; called after this process committed a write."""
        self._entries.clear()
        self._generation = None
        if self._source is not None:
            await self._source.advance()

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
