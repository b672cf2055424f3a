"""Engines and transactions.

`Database.write()` gives one connection inside one transaction. On SQLite
(the embedded default) writes begin with `BEGIN IMMEDIATE`, so two writers
queue on the database lock instead of failing half-way when a deferred read
lock cannot be upgraded.

`Database.read()` gives a connection for queries. On SQLite it runs them on
the event loop's own thread with the blocking driver: in WAL mode a read never
waits for a writer and takes microseconds, far less than handing it to a
thread and back, which is what every registry pull would otherwise pay. Each
query there sees the latest commit (autocommit), so a read that needs several
queries to agree must do them in one statement or in `write()`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Insert, Table, create_engine, event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from dockyard.db.cache import ReadCache

# How long a SQLite writer waits for the lock before giving up, in ms.
_SQLITE_BUSY_TIMEOUT_MS = 30_000


class Database:
    """The metadata store. Create one per process (engines own pools)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._writer = self._create_engine()
        self._sync_reader = self._create_sqlite_reader() if self.is_sqlite else None
        self.cache = ReadCache(self._sqlite_path() if self.is_sqlite else None)

    def _sqlite_path(self) -> Path:
        return Path(make_url(self.url).database or ":memory:")

    def _create_engine(self) -> AsyncEngine:
        if not self.is_sqlite:
            return create_async_engine(self.url, pool_pre_ping=True)
        engine = create_async_engine(
            self.url, connect_args={"check_same_thread": False}, pool_size=8
        )
        event.listen(engine.sync_engine, "connect", _configure_sqlite)

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def _create_sqlite_reader(self) -> Engine:
        # Only the event loop's thread uses it; overflow instead of waiting,
        # since waiting would block the loop.
        engine = create_engine(
            self.url.replace("+aiosqlite", ""),
            connect_args={"check_same_thread": False},
            pool_size=4,
            max_overflow=-1,
        )
        event.listen(engine, "connect", _configure_sqlite)
        return engine

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for queries; see the module docstring."""
        if self._sync_reader is None:
            async with self._writer.connect() as connection:
                async with connection.begin():
                    yield connection
            return
        with self._sync_reader.connect() as connection:
            yield _LoopConnection(connection)  # type: ignore[misc]

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction, committed unless the body raises."""
        async with self._writer.begin() as connection:
            yield connection

    async def close(self) -> None:
        self.cache.close()
        await self._writer.dispose()
        if self._sync_reader is not None:
            self._sync_reader.dispose()


class _LoopConnection:
    """The async connection interface over a blocking SQLite connection."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.dialect = connection.dialect

    async def execute(self, statement: Any, *args: Any) -> Any:
        return self._connection.execute(statement, *args)

    async def scalar(self, statement: Any) -> Any:
        return self._connection.scalar(statement)

    async def scalars(self, statement: Any) -> Any:
        return self._connection.scalars(statement)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit
    # transactions would defer the lock); reads run in autocommit.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def insert_or_ignore(conn: AsyncConnection, table: Table, **values: Any) -> Insert:
    """An INSERT that does nothing when the row's key already exists."""
    if conn.dialect.name == "postgresql":
        return postgresql_insert(table).values(**values).on_conflict_do_nothing()
    return sqlite_insert(table).values(**values).on_conflict_do_nothing()
