"""Storage quotas: one per project, a hard limit in bytes (-1: no limit).

The limit is stored (`quotas`); what a project uses is computed from the
database on every read, so it cannot drift from the content: the sizes of
the distinct blobs its repositories may read plus those of its distinct
manifests (each digest counted once per project, however many repositories
hold it).

Pushes are not yet refused past the limit: enforcement comes with the
governance work, which will check `storage_used` against the limit when a
blob or manifest is linked into a repository.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Label, Select, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.audit import record_change
from dockyard.configurations import KEYS
from dockyard.db.database import Database, count_rows
from dockyard.db.schema import (
    blobs,
    configurations,
    manifests,
    projects,
    quotas,
    repositories,
    repository_blobs,
    users,
)

STORAGE = "storage"
UNLIMITED = -1
DEFAULT_LIMIT_KEY = "storage_per_project"


class QuotaError(Exception):
    """A quota operation cannot be done; the message says why."""


class QuotaInvalid(QuotaError):
    pass


class QuotaNotFound(QuotaError):
    pass


@dataclass(frozen=True, slots=True)
class Quota:
    id: int
    project_id: int
    project_name: str
    owner_name: str
    storage_limit: int
    storage_used: int
    created_at: datetime
    updated_at: datetime


def check_limit(value: int) -> None:
    """Raise `QuotaInvalid` unless `value` is -1 or a positive byte count."""
    if value != UNLIMITED and value <= 0:
        raise QuotaInvalid(f"{STORAGE} limit must be -1 (no limit) or above 0")


async def create_quota(
    conn: AsyncConnection, project_id: int, storage_limit: int | None
) -> None:
    """Give a new project its quota, in the transaction creating it.

    Without `storage_limit`, the `storage_per_project` configuration applies.
    """
    if storage_limit is None:
        storage_limit = await _default_limit(conn)
    check_limit(storage_limit)
    now = datetime.now(UTC)
    await conn.execute(
        insert(quotas).values(
            project_id=project_id,
            storage_limit=storage_limit,
            created_at=now,
            updated_at=now,
        )
    )


def storage_used() -> Label[Any]:
    """Bytes the project of the enclosing query (over `projects`) uses."""
    in_project = repositories.c.project_id == projects.c.id
    blob_digests = (
        select(repository_blobs.c.digest)
        .join(repositories, repositories.c.id == repository_blobs.c.repository_id)
        .where(in_project)
        .correlate(projects)
    )
    blob_bytes = (
        select(func.coalesce(func.sum(blobs.c.size), 0))
        .where(blobs.c.digest.in_(blob_digests))
        .correlate(projects)
        .scalar_subquery()
    )
    # One row per distinct digest: the same manifest in two repositories of
    # the project is stored once.
    first_of_digest = (
        select(func.min(manifests.c.id))
        .join(repositories, repositories.c.id == manifests.c.repository_id)
        .where(in_project)
        .group_by(manifests.c.digest)
        .correlate(projects)
    )
    manifest_bytes = (
        select(func.coalesce(func.sum(manifests.c.size), 0))
        .where(manifests.c.id.in_(first_of_digest))
        .correlate(projects)
        .scalar_subquery()
    )
    return (blob_bytes + manifest_bytes).label("storage_used")


def quota_query() -> Select:
    """Quotas with their project, owner and usage, for `QuotaService.list_quotas`."""
    return (
        select(
            quotas,
            projects.c.name.label("project_name"),
            users.c.username.label("owner_name"),
            storage_used(),
        )
        .join(projects, projects.c.id == quotas.c.project_id)
        .outerjoin(users, users.c.id == projects.c.owner_id)
    )


class QuotaService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure_quotas(self) -> None:
        """Give every project that has none (made before quotas existed) its
        quota with the configured default limit."""
        lacking = select(projects.c.id).where(
            projects.c.id.not_in(select(quotas.c.project_id))
        )
        async with self.db.read() as conn:
            if not (await conn.execute(lacking.limit(1))).first():
                return
        async with self.db.write() as conn:
            for project_id in (await conn.execute(lacking)).scalars().all():
                await create_quota(conn, project_id, None)

    async def list_quotas(
        self, query: Select, offset: int, limit: int
    ) -> tuple[list[Quota], int]:
        """A page of `query` (from `quota_query`) and the total it finds."""
        await self.ensure_quotas()
        async with self.db.read() as conn:
            total = await count_rows(conn, query)
            rows = (await conn.execute(query.offset(offset).limit(limit))).all()
        return [_quota(row) for row in rows], total

    async def get_quota(self, quota_id: int) -> Quota:
        """The quota; `QuotaNotFound` if there is none with that id."""
        found, _ = await self.list_quotas(
            quota_query().where(quotas.c.id == quota_id), 0, 1
        )
        if not found:
            raise QuotaNotFound(f"quota {quota_id} not found")
        return found[0]

    async def project_quota(self, project_id: int) -> Quota:
        found, _ = await self.list_quotas(
            quota_query().where(quotas.c.project_id == project_id), 0, 1
        )
        if not found:
            raise QuotaNotFound(f"project {project_id} has no quota")
        return found[0]

    async def set_limit(self, quota: Quota, storage_limit: int, actor: str) -> None:
        """Change the project's hard limit; `QuotaInvalid` for a bad value.

        A limit below what the project already uses is allowed: it only
        refuses further pushes."""
        check_limit(storage_limit)
        async with self.db.write() as conn:
            await conn.execute(
                update(quotas)
                .where(quotas.c.id == quota.id)
                .values(storage_limit=storage_limit, updated_at=datetime.now(UTC))
            )
            await record_change(
                conn, actor, "quota", "update", quota.project_name, quota.project_id
            )

    async def total_storage(self) -> int:
        """Bytes stored in the registry: every blob, and every distinct manifest."""
        first_of_digest = select(func.min(manifests.c.id)).group_by(manifests.c.digest)
        async with self.db.read() as conn:
            blob_bytes = await conn.scalar(
                select(func.coalesce(func.sum(blobs.c.size), 0))
            )
            manifest_bytes = await conn.scalar(
                select(func.coalesce(func.sum(manifests.c.size), 0)).where(
                    manifests.c.id.in_(first_of_digest)
                )
            )
        return int(blob_bytes or 0) + int(manifest_bytes or 0)


async def _default_limit(conn: AsyncConnection) -> int:
    # Read in the caller's transaction rather than through the configuration
    # service's cache, so a project made right after a change gets the new value.
    stored = await conn.scalar(
        select(configurations.c.value).where(configurations.c.key == DEFAULT_LIMIT_KEY)
    )
    return json.loads(stored) if stored is not None else KEYS[DEFAULT_LIMIT_KEY].default


def _quota(row: Any) -> Quota:
    return Quota(
        id=row.id,
        project_id=row.project_id,
        project_name=row.project_name,
        owner_name=row.owner_name or "",
        storage_limit=row.storage_limit,
        storage_used=int(row.storage_used or 0),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
