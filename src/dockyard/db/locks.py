"""Locks that hold across processes and replicas sharing one database.

- PostgreSQL: advisory locks, keyed by a 64-bit number derived from a name.
  `pg_advisory_xact_lock` ends with its transaction; `pg_advisory_lock` with
  its session, so a replica that dies releases what it held.
- SQLite: an exclusive `flock` on a file beside the database; the kernel
  releases it when the process dies.

Names in use: "migrate" (schema upgrades), "write" (every write transaction
on PostgreSQL, see `database.py`), "bootstrap" (the initial content).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

# How often a waiting process tries a file lock again, in seconds.
_FILE_LOCK_POLL_SECONDS = 0.05


def lock_key(name: str) -> int:
    """The advisory-lock key of `name`: the same in every process, and apart
    from other applications' small integer keys."""
    digest = hashlib.sha256(f"dockyard:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_path(database: Path, name: str) -> Path:
    """The file whose `flock` stands for lock `name` of the SQLite `database`."""
    return database.with_name(f"{database.name}.{name}.lock")


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if absent), waiting for it."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


@asynccontextmanager
async def file_lock_async(path: Path) -> AsyncIterator[None]:
    """`file_lock` that sleeps instead of blocking the event loop while waiting."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(_FILE_LOCK_POLL_SECONDS)
        yield
    finally:
        os.close(descriptor)
