"""Tags: names that point at manifests, listed in lexical order."""

from __future__ import annotations

from sqlalchemy import select

from dockyard.db.database import Database, fetch_page
from dockyard.db.schema import tags
from dockyard.registry.repositories import repository_id


async def list_tags(
    db: Database, repository: str, limit: int | None, last: str | None
) -> tuple[list[str], bool] | None:
    """Tags of `repository`, lexically after `last`, up to `limit`, and whether
    more follow; None if there is no such repository."""

    async def load() -> tuple[list[str], bool] | None:
        async with db.read() as conn:
            repo_id = await repository_id(conn, repository)
            if repo_id is None:
                return None
            query = (
                select(tags.c.name)
                .where(tags.c.repository_id == repo_id)
                .order_by(tags.c.name)
            )
            if last:
                query = query.where(tags.c.name > last)
            return await fetch_page(conn, query, limit)

    return await db.cache.get_or_load(("tags", repository, limit, last), load)
