"""A database's schema revision as Alembic sees it, for the tests of the
migrations and of servers that migrate at start-up; SQLite and PostgreSQL
alike."""

from collections.abc import Callable
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine
from sqlalchemy.ext.asyncio import create_async_engine

from dockyard.db.migrate import alembic_config
from tests.backends import run_coroutine


def on_connection(url: str, work: Callable[[Connection], Any]) -> Any:
    """`work(connection)` in a committed transaction on the database at `url`."""
    if url.startswith("sqlite"):
        engine = create_engine(url)
        try:
            with engine.begin() as connection:
                return work(connection)
        finally:
            engine.dispose()

    async def run() -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                return await connection.run_sync(work)
        finally:
            await engine.dispose()

    return run_coroutine(run)


def head_revision() -> str:
    """The newest revision the migrations know."""
    return ScriptDirectory.from_config(alembic_config(None)).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at; None before any migration."""
    return MigrationContext.configure(connection).get_current_revision()
