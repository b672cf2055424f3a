"""Engines and transactions.

`Database.read()` gives a connection for queries, `Database.write()` one inside
a transaction that commits unless the body raises.

On SQLite (the embedded default) both run on the event loop's own thread with
the blocking driver: a statement takes microseconds, far less than handing it
to a thread and back, which is what every pull and push would otherwise pay.
Nothing may block the loop, so:

- reads run in autocommit; in WAL mode they never wait for writers. A read
  that needs several queries to agree must make them one statement;
- a write begins with `BEGIN IMMEDIATE` without waiting: when another process
  holds the write lock, the coroutine sleeps and tries again (up to
  `_WRITE_LOCK_SECONDS`), so writers queue without blocking the loop. The
  body of a write must not await anything but its statements, or other
  coroutines of this process would queue behind it the same way.

On PostgreSQL (production mode, asyncpg) every write transaction first takes
one transaction-scoped advisory lock, so writers queue exactly as they do on
SQLite, across all replicas: services read, check and write inside one write
transaction and rely on no other writer running meanwhile. Reads are not
affected (MVCC). Write transactions last milliseconds; should one lock
become the bottleneck, row-level locking per service is the next step.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Select,
    Table,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from dockyard.db.cache import Generation, ReadCache, SqliteDataVersion
from dockyard.db.locks import file_lock_async, lock_key, lock_path

# How long a SQLite reader may wait on a lock (rare in WAL mode), in ms.
_READ_BUSY_TIMEOUT_MS = 2_000
# How long a writer keeps trying to take the write lock, in seconds, and how
# long it sleeps between tries.
_WRITE_LOCK_SECONDS = 30.0
_FIRST_RETRY_SECONDS = 0.0005
_LAST_RETRY_SECONDS = 0.004


class UnstorableValue(ValueError):
    """A value the database cannot store or compare with: text holding a NUL
    character (PostgreSQL refuses it), or a number beyond its column's range.
    Such values come from clients; the caller answers with a 400."""


# SQLSTATE class 22, "data exception": what PostgreSQL (and asyncpg's own
# argument checks) raise for such values; sqlite3 raises OverflowError.
_DATA_EXCEPTION_CLASS = "22"


def _is_unstorable(exc: Exception) -> bool:
    if isinstance(exc, OverflowError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    return sqlstate.startswith(_DATA_EXCEPTION_CLASS)


class Database:
    """The metadata store. Create one per process (engines own pools).

    `generation` overrides where the read cache learns of changes (see
    `dockyard.db.cache`); by default SQLite's own counter, none on PostgreSQL.
    """

    def __init__(self, url: str, generation: Generation | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self._async_engine = None
            self._reader = _sqlite_engine(url, _READ_BUSY_TIMEOUT_MS)
            self._writer = _sqlite_engine(url, 0)
            generation = generation or SqliteDataVersion(self.sqlite_path())
        else:
            self._async_engine = create_async_engine(url, pool_pre_ping=True)
            event.listen(
                self._async_engine.sync_engine, "before_cursor_execute", _refuse_nul
            )
        self.cache = ReadCache(generation)

    def sqlite_path(self) -> Path:
        return Path(make_url(self.url).database or ":memory:")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for queries; see the module docstring."""
        try:
            if self._async_engine is not None:
                async with (
                    self._async_engine.connect() as connection,
                    connection.begin(),
                ):
                    yield connection
                return
            with self._reader.connect() as connection:
                yield _LoopConnection(connection)  # type: ignore[misc]
        except (DBAPIError, OverflowError) as exc:
            if not _is_unstorable(exc):
                raise
            raise _unstorable() from exc

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction, committed unless the body raises.
        No other write transaction, of any process, runs at the same time."""
        try:
            if self._async_engine is not None:
                async with self._async_engine.begin() as connection:
                    await connection.execute(_TAKE_WRITE_LOCK, {"key": _WRITE_KEY})
                    yield connection
            else:
                with self._writer.connect() as connection:
                    await _begin_immediate(connection)
                    try:
                        yield _LoopConnection(connection)  # type: ignore[misc]
                    except BaseException:
                        connection.rollback()
                        raise
                    connection.commit()
        except (DBAPIError, OverflowError) as exc:
            if not _is_unstorable(exc):
                raise
            raise _unstorable() from exc
        await self.cache.invalidate()

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """Hold lock `name` across every process using this database (see
        `dockyard.db.locks`), waiting without blocking the event loop."""
        if self._async_engine is None:
            async with file_lock_async(lock_path(self.sqlite_path(), name)):
                yield
            return
        key = {"key": lock_key(name)}
        async with self._async_engine.connect() as connection:
            connection = await connection.execution_options(
                isolation_level="AUTOCOMMIT"
            )
            await connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
            try:
                yield
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)

    def pool_stats(self) -> dict[str, int]:
        """Connections of this process's pools: in use, idle, beyond the size."""
        engines = (
            [self._async_engine.sync_engine]
            if self._async_engine is not None
            else [self._reader, self._writer]
        )
        stats = {"checked_out": 0, "idle": 0, "overflow": 0}
        for engine in engines:
            pool: Any = engine.pool
            stats["checked_out"] += pool.checkedout()
            stats["idle"] += pool.checkedin()
            stats["overflow"] += max(pool.overflow(), 0)
        return stats

    async def close(self) -> None:
        self.cache.close()
        if self._async_engine is not None:
            await self._async_engine.dispose()
        else:
            self._reader.dispose()
            self._writer.dispose()


def _refuse_nul(
    _conn: Any, _cursor: Any, _statement: str, parameters: Any, *_: Any
) -> None:
    """Refuse text with NUL characters before any database sees it: PostgreSQL
    cannot store it, and SQLite must answer the same."""
    if _holds_nul(parameters):
        raise _unstorable()


def _holds_nul(value: Any) -> bool:
    """Whether `value`, or a value in the lists, tuples and dicts it holds
    (a statement's parameters, one set or many), is text with a NUL."""
    if isinstance(value, str):
        return not storable_text(value)
    if isinstance(value, dict):
        return any(_holds_nul(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_nul(v) for v in value)
    return False


def _unstorable() -> UnstorableValue:
    return UnstorableValue(
        "a value cannot be stored: text with a NUL character, or a number out of range"
    )


_WRITE_KEY = lock_key("write")
_TAKE_WRITE_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


async def _begin_immediate(connection: Connection) -> None:
    """Take SQLite's write lock, sleeping (not blocking) while another holds it."""
    deadline = time.monotonic() + _WRITE_LOCK_SECONDS
    delay = _FIRST_RETRY_SECONDS
    while True:
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as exc:
            if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                raise
        connection.rollback()
        # Jittered, short sleeps: write transactions last a millisecond or
        # two, so a long sleep would leave the lock idle.
        await asyncio.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, _LAST_RETRY_SECONDS)


def _sqlite_engine(url: str, busy_timeout_ms: int) -> Engine:
    # Only the event loop's thread uses these; overflow instead of waiting for
    # a pooled connection, since waiting would block the loop.
    engine = create_engine(
        sync_sqlite_url(url),
        connect_args={"check_same_thread": False},
        pool_size=4,
        max_overflow=-1,
    )

    event.listen(engine, "before_cursor_execute", _refuse_nul)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver: transactions are begun explicitly.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.close()

    return engine


def sync_sqlite_url(url: str) -> str:
    return url.replace("+aiosqlite", "")


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


def insert_or_ignore(conn: AsyncConnection, table: Table, **values: Any) -> Insert:
    """An INSERT that does nothing when the row's key already exists."""
    return _dialect_insert(conn, table).values(**values).on_conflict_do_nothing()


def insert_or_update(
    conn: AsyncConnection,
    table: Table,
    keys: list[str],
    values: dict[str, Any],
    changes: dict[str, Any],
) -> Insert:
    """An INSERT that, when a row with the same `keys` exists, applies `changes`."""
    return (
        _dialect_insert(conn, table)
        .values(**values)
        .on_conflict_do_update(index_elements=keys, set_=changes)
    )


def _dialect_insert(conn: AsyncConnection, table: Table) -> Any:
    # SQLite and PostgreSQL share the ON CONFLICT clauses.
    if conn.dialect.name == "postgresql":
        return postgresql_insert(table)
    return sqlite_insert(table)


async def move_id_sequence_past_rows(conn: AsyncConnection, table: Table) -> None:
    """After rows were inserted with explicit ids: on PostgreSQL, make the id
    sequence hand out ids above them (SQLite's rowid needs nothing)."""
    if conn.dialect.name != "postgresql":
        return
    await conn.execute(
        text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
            f"GREATEST((SELECT max(id) FROM {table.name}), 1))"
        )
    )


def storable_text(value: str) -> bool:
    """Whether `value` can be stored and compared on every database Dockyard
    runs on (PostgreSQL refuses NUL characters): a name that is not can
    name nothing stored."""
    return "\x00" not in value


def contains_text(column: Any, fragment: str) -> Any:
    """Whether `column` contains `fragment`, ignoring case, the same on SQLite
    and PostgreSQL (whose LIKE, unlike SQLite's, heeds case); `%`, `_` and
    `\\` in `fragment` match only themselves."""
    escaped = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape="\\")


async def count_rows(conn: AsyncConnection, query: Select) -> int:
    """How many rows `query` finds (its ordering dropped, for speed)."""
    total = await conn.scalar(
        select(func.count()).select_from(query.order_by(None).subquery())
    )
    return int(total or 0)


async def fetch_page(
    conn: AsyncConnection, query: Select, limit: int | None
) -> tuple[list[str], bool]:
    """Up to `limit` values of `query`, and whether more follow (one row more is
    read to know, so that a client is not sent to an empty last page)."""
    if limit is None:
        return list((await conn.scalars(query)).all()), False
    values = list((await conn.scalars(query.limit(limit + 1))).all())
    return values[:limit], len(values) > limit
