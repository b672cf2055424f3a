"""Alembic migrations build one schema on SQLite and PostgreSQL alike.

Each test runs on both databases, whichever backend the suite runs on: a
fresh SQLite file, and a fresh PostgreSQL database (dropped afterwards).
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, select
from sqlalchemy.ext.asyncio import create_async_engine

from dockyard.config import normalise_database_url
from dockyard.db.migrate import alembic_config, upgrade_database
from dockyard.db.schema import members, metadata, projects, roles, users
from tests.backends import (
    create_database,
    drop_database,
    ensure_postgres_running,
    postgres_url,
    run_coroutine,
)

FIRST = "0001"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> Iterator[str]:
    """The URL of an empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dockyard.db'}"
        return
    ensure_postgres_running()
    name = create_database()
    try:
        yield normalise_database_url(postgres_url(name))
    finally:
        drop_database(name)


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
    return ScriptDirectory.from_config(alembic_config(None)).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def fill_first_schema(connection: Connection) -> None:
    """A user who is a developer (role 2) of a project, as 0001 stored them."""
    now = datetime.now(UTC)
    user = connection.execute(
        users.insert().values(
            username="alice",
            password_hash="x",
            sysadmin=False,
            created_at=now,
            updated_at=now,
        )
    ).inserted_primary_key[0]
    project = connection.execute(
        projects.insert().values(
            name="team", public=False, created_at=now.timestamp(), updated_at=now
        )
    ).inserted_primary_key[0]
    connection.execute(
        members.insert().values(
            project_id=project, user_id=user, role=2, created_at=now
        )
    )


def test_first_migration_upgrades_to_head_keeping_members(database_url):
    upgrade_database(database_url, FIRST)
    on_connection(database_url, fill_first_schema)

    upgrade_database(database_url)

    def read(connection: Connection) -> tuple:
        role = connection.execute(
            select(roles.c.name)
            .join(members, members.c.role == roles.c.id)
            .where(members.c.project_id.is_not(None))
        ).scalar_one()
        return current_revision(connection), role

    assert on_connection(database_url, read) == (head_revision(), "developer")


def test_migrated_schema_matches_the_models(database_url):
    upgrade_database(database_url)

    def differences(connection: Connection) -> list:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(context, metadata)

    assert on_connection(database_url, differences) == []


def test_role_created_after_migration_is_numbered_after_builtin_roles(
    database_url,
):
    upgrade_database(database_url)
    now = datetime.now(UTC)

    def create_role(connection: Connection) -> int:
        return connection.execute(
            roles.insert().values(
                name="custom", builtin=False, created_at=now, updated_at=now
            )
        ).inserted_primary_key[0]

    assert on_connection(database_url, create_role) == 6


def test_upgrade_of_database_at_head_changes_nothing(database_url):
    upgrade_database(database_url)

    upgrade_database(database_url)

    assert on_connection(database_url, current_revision) == head_revision()
