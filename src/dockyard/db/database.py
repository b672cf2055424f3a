"""Engines and transactions.

`Database.read()` and `Database.write()` each give one connection inside one
transaction. On SQLite (the embedded default) writes begin with
`BEGIN IMMEDIATE`, so two writers queue on the database lock instead of
failing half-way when a deferred read lock cannot be upgraded; reads stay
deferred and, in WAL mode, never wait for writers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Insert, Table, event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

# How long a SQLite writer waits for the lock before giving up, in ms.
_SQLITE_BUSY_TIMEOUT_MS = 30_000


class Database:
    """The metadata store. Create one per process (engines own pools)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._reader = self._create_engine(immediate=False)
        self._writer = self._create_engine(immediate=True) if self.is_sqlite else self._reader

    def _create_engine(self, *, immediate: bool) -> AsyncEngine:
        if not self.is_sqlite:
            return create_async_engine(self.url, pool_pre_ping=True)
        engine = create_async_engine(
            self.url, connect_args={"check_same_thread": False}, pool_size=8
        )
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

        @event.listens_for(engine.sync_engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's
            # implicit transactions would defer the lock).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql(begin)

        return engine

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a read transaction (rolled back at the end)."""
        async with self._reader.connect() as connection:
            async with connection.begin():
                yield connection

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction, committed unless the body raises."""
        async with self._writer.begin() as connection:
            yield connection

    async def close(self) -> None:
        await self._reader.dispose()
        if self._writer is not self._reader:
            await self._writer.dispose()


def insert_or_ignore(conn: AsyncConnection, table: Table, **values: Any) -> Insert:
    """An INSERT that does nothing when the row's key already exists."""
    if conn.dialect.name == "postgresql":
        return postgresql_insert(table).values(**values).on_conflict_do_nothing()
    return sqlite_insert(table).values(**values).on_conflict_do_nothing()
