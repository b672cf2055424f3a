"""Bring a database's schema to the newest revision with Alembic.

Replicas that start at once all call `upgrade_database`; the "migrate" lock
(see `dockyard.db.locks`) lets one of them migrate while the others wait,
then find the schema at head and do nothing:

- PostgreSQL: the whole upgrade is one transaction (PostgreSQL's DDL is
  transactional) that first takes a transaction-scoped advisory lock on the
  migration connection. A replica killed mid-way rolls back and unlocks.
- SQLite: an exclusive file lock beside the database file.

Alembic runs synchronously; on PostgreSQL it is driven through asyncpg with
`run_sync`, so no second PostgreSQL driver is needed.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from dockyard.db.locks import file_lock, lock_key, lock_path

log = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATE_KEY = lock_key("migrate")


def sync_url(url: str) -> str:
    """The blocking-driver URL for an async SQLite one."""
    return url.replace("+aiosqlite", "")


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration, running on `connection` (see migrations/env.py)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade_database(url: str, revision: str = "head") -> str | None:
    """Apply every migration up to `revision`; a no-op on an up-to-date
    database. Safe to call from several processes at once. Return the
    revision the database is at afterwards."""
    if url.startswith("sqlite"):
        return _upgrade_sqlite(url, revision)
    return asyncio.run(_upgrade_postgresql(url, revision))


def _upgrade_sqlite(url: str, revision: str) -> str | None:
    database = Path(make_url(url).database or "")
    engine = create_engine(sync_url(url))
    try:
        with file_lock(lock_path(database, "migrate")), engine.begin() as connection:
            return _upgrade(connection, revision)
    finally:
        engine.dispose()


async def _upgrade_postgresql(url: str, revision: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_KEY}
            )
            return await connection.run_sync(_upgrade, revision)
    finally:
        await engine.dispose()


def _upgrade(connection: Connection, revision: str) -> str | None:
    before = MigrationContext.configure(connection).get_current_revision()
    command.upgrade(alembic_config(connection), revision)
    after = MigrationContext.configure(connection).get_current_revision()
    if after != before:
        log.info("database_migrated from=%s to=%s", before, after)
    return after
