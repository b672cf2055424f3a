"""Repositories: created on first push, listed in the catalog."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.db.database import Database, fetch_page
from dockyard.db.schema import projects, repositories
from dockyard.registry.errors import NameUnknown
from dockyard.registry.reference import project_of


async def repository_id(conn: AsyncConnection, name: str) -> int | None:
    return await conn.scalar(
        select(repositories.c.id).where(repositories.c.name == name)
    )


async def ensure_repository(conn: AsyncConnection, name: str) -> int:
    """The id of repository `name`, created in its project if new.

    Raise `NameUnknown` if the project does not exist (callers have already
    been authorised, so this only happens when the project was just deleted).
    """
    existing = await repository_id(conn, name)
    if existing is not None:
        return existing
    project_id = await conn.scalar(
        select(projects.c.id).where(projects.c.name == project_of(name))
    )
    if project_id is None:
        raise NameUnknown("the repository's project does not exist", name=name)
    now = datetime.now(UTC)
    result = await conn.execute(
        insert(repositories).values(
            project_id=project_id,
            name=name,
            created_at=now,
            updated_at=now,
            pull_count=0,
        )
    )
    return int(result.inserted_primary_key[0])


class Catalog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def project_repositories(self, project_id: int) -> list[str]:
        """Every repository name of a project, sorted."""
        query = (
            select(repositories.c.name)
            .where(repositories.c.project_id == project_id)
            .order_by(repositories.c.name)
        )
        async with self.db.read() as conn:
            return list((await conn.scalars(query)).all())

    async def list_repositories(
        self, limit: int | None, last: str | None
    ) -> tuple[list[str], bool]:
        """Every repository name lexically after `last`, up to `limit`, and
        whether more follow. Callers decide who may see them all."""

        async def load() -> tuple[list[str], bool]:
            query = select(repositories.c.name).order_by(repositories.c.name)
            if last:
                query = query.where(repositories.c.name > last)
            async with self.db.read() as conn:
                return await fetch_page(conn, query, limit)

        return await self.db.cache.get_or_load(("catalog", limit, last), load)
