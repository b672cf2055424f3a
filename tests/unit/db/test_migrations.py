"""Alembic migrations build one schema on SQLite and PostgreSQL alike.

Each test runs on both databases, whichever backend the suite runs on: a
fresh SQLite file, and a fresh PostgreSQL database (dropped afterwards).
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, select

from dockyard.config import normalise_database_url
from dockyard.db.migrate import upgrade_database
from dockyard.db.schema import members, metadata, projects, roles, users
from tests.backends import (
    create_database,
    drop_database,
    ensure_postgres_running,
    postgres_url,
)
from tests.migrations import current_revision, head_revision, on_connection

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
